"""Rebuild this sample from a SQuAD JSON file (standard library only).

    python data/squad-sample/build.py PATH/TO/dev.json

Each article becomes one corpus document, ``docs/<Title>.txt``: the title on the first line, then its
paragraphs in order, separated by blank lines, verbatim. From each article, QUESTIONS_PER_ARTICLE paragraphs
are taken at evenly spaced positions (no selection by length or difficulty) and, from each, its first
answerable question: ``reference`` is its first gold answer, ``passage`` the whole paragraph (a verbatim
substring of the document), ``source`` the document's file name.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

QUESTIONS_PER_ARTICLE = 6
HERE = Path(__file__).resolve().parent


def main(source: Path) -> None:
    data = json.loads(source.read_text(encoding="utf-8"))["data"]
    docs = HERE / "docs"
    docs.mkdir(exist_ok=True)
    rows = []
    for article in data:
        name = f"{article['title']}.txt"
        paragraphs = [p["context"].strip() for p in article["paragraphs"]]
        (docs / name).write_text(
            article["title"].replace("_", " ") + "\n\n" + "\n\n".join(paragraphs) + "\n", encoding="utf-8"
        )
        n = len(article["paragraphs"])
        picks = sorted(
            {round(i * (n - 1) / (QUESTIONS_PER_ARTICLE - 1)) for i in range(QUESTIONS_PER_ARTICLE)}
        )
        for index in picks:
            paragraph = article["paragraphs"][index]
            qa = next((q for q in paragraph["qas"] if not q.get("is_impossible") and q["answers"]), None)
            if qa is None:
                continue
            rows.append(
                {
                    "id": qa["id"],
                    "question": qa["question"].strip(),
                    "reference": qa["answers"][0]["text"].strip(),
                    "passage": paragraph["context"].strip(),
                    "source": name,
                }
            )
    with (HERE / "questions.jsonl").open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{len(data)} documents, {len(rows)} questions")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
