// Renders Ollama chat templates with Go's own text/template, applied the way Ollama's template.Execute applies
// them (server/template: collate, then execute over System/Messages/Tools/Response/Think). Built and run by
// tests/test_go_template_engine.py to prove that bakeoff's derived templates render like the Jinja ones in the
// real engine, not only in bakeoff's interpreter.
//
// stdin: a JSON list of {"template", "messages": [{"role", "content"}], "system_in_messages"}
// stdout: a JSON list of {"output"} or {"error"}, in the same order.
package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"text/template"
)

type ToolCall struct{}

type Message struct {
	Role      string
	Content   string
	Thinking  string
	Images    []string
	ToolCalls []ToolCall
}

type input struct {
	Template         string `json:"template"`
	Messages         []struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	} `json:"messages"`
	SystemInMessages bool `json:"system_in_messages"`
}

type output struct {
	Output string `json:"output"`
	Error  string `json:"error,omitempty"`
}

// Ollama's template functions (server/template/template.go: funcs).
var funcs = template.FuncMap{
	"json": func(v any) string {
		b, _ := json.Marshal(v)
		return string(b)
	},
	"currentDate": func(args ...string) string { return "26 Jul 2024" },
}

// collate is Ollama's: system contents joined for .System; consecutive messages of one role (except tool)
// merged with a blank line. Older servers dropped system messages from .Messages (systemInMessages=false).
func collate(in input) (string, []*Message) {
	var system []string
	var collated []*Message
	for _, m := range in.Messages {
		if m.Role == "system" {
			system = append(system, m.Content)
			if !in.SystemInMessages {
				continue
			}
		}
		if len(collated) > 0 && collated[len(collated)-1].Role == m.Role && m.Role != "tool" {
			collated[len(collated)-1].Content += "\n\n" + m.Content
		} else {
			collated = append(collated, &Message{Role: m.Role, Content: m.Content})
		}
	}
	return strings.Join(system, "\n\n"), collated
}

func render(in input) output {
	tmpl, err := template.New("").Option("missingkey=zero").Funcs(funcs).Parse(in.Template)
	if err != nil {
		return output{Error: err.Error()}
	}
	system, messages := collate(in)
	var b bytes.Buffer
	err = tmpl.Execute(&b, map[string]any{
		"System":     system,
		"Messages":   messages,
		"Tools":      nil,
		"Response":   "",
		"Think":      false,
		"IsThinkSet": false,
	})
	if err != nil {
		return output{Error: err.Error()}
	}
	return output{Output: b.String()}
}

func main() {
	var inputs []input
	if err := json.NewDecoder(os.Stdin).Decode(&inputs); err != nil {
		os.Stderr.WriteString("bad input: " + err.Error() + "\n")
		os.Exit(2)
	}
	outputs := make([]output, len(inputs))
	for i, in := range inputs {
		outputs[i] = render(in)
	}
	if err := json.NewEncoder(os.Stdout).Encode(outputs); err != nil {
		os.Exit(1)
	}
}
