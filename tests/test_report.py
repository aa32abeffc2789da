"""`bakeoff report`: Markdown with PNGs beside it, self-contained HTML that a browser renders completely."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from eval_toys import write_run

from bakeoff.core import Question
from bakeoff.eval.scoring import ScoringSettings, score_answers

QUESTIONS = [
    Question(id=f"q{i:02d}", question=f"Who signs clause {i}?", reference=f"the <b>supplier</b> {i}")
    for i in range(24)
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    def rows(answer_for):
        return [
            {
                "question_id": q.id,
                "question": q.question,
                "reference": q.reference,
                "answer": answer_for(q),
                "latency_s": 0.1 + i / 100,
            }
            for i, q in enumerate(QUESTIONS)
        ]

    answers = {
        "rag": rows(lambda q: q.reference),
        "zero-shot": rows(lambda q: "I do not know | sorry" if q.id > "q03" else q.reference),
    }
    scores = score_answers(QUESTIONS, answers, ScoringSettings(metrics=["token_f1", "chrf"])).to_dict()
    return write_run(tmp_path_factory.mktemp("report"), scores, answers)


def test_markdown_report_writes_pngs_beside_it(run_dir, tmp_path, bakeoff_cmd):
    out = tmp_path / "doc" / "decision.md"
    proc = subprocess.run(
        [*bakeoff_cmd, "report", str(run_dir), "--format", "md", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(images) >= 4
    for name in images:
        png = out.parent / name
        assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "## Verdict" in text and "**rag** has the highest mean" in text and "rag beats zero-shot" in text
    assert "## Paired comparisons" in text and "p_holm" in text and "## Error analysis" in text
    assert "I do not know \\| sorry" in text  # table cells escape pipes


def test_html_report_is_self_contained(run_dir, bakeoff_cmd):
    proc = subprocess.run(
        [*bakeoff_cmd, "report", str(run_dir), "--format", "html"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    page = (run_dir / "report.html").read_text()
    srcs = re.findall(r'<img [^>]*src="([^"]+)"', page)
    assert len(srcs) >= 4 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "http://" not in page and "https://" not in page  # nothing to fetch
    assert "the &lt;b&gt;supplier&lt;/b&gt;" in page  # answer and reference texts are escaped


def test_report_of_an_unscored_run_is_a_clear_error(tmp_path, bakeoff_cmd):
    from bakeoff.run.store import RunWriter

    writer = RunWriter.create(tmp_path / "runs", "x", "name: x\n")
    writer.finish("failed", "boom")
    proc = subprocess.run(
        [*bakeoff_cmd, "report", str(writer.path)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1 and "no scores.json" in proc.stderr and "Traceback" not in proc.stderr


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.browser
@pytest.mark.skipif(_chromium() is None, reason="chromium is not installed (apt-get install -y chromium)")
def test_html_report_renders_every_image_in_headless_chromium(run_dir, tmp_path, bakeoff_cmd):
    out = tmp_path / "report.html"
    subprocess.run(
        [*bakeoff_cmd, "report", str(run_dir), "-o", str(out)], check=True, capture_output=True, timeout=180
    )
    # A probe script (added to a copy: the report itself has no scripts) records, after load, how many images
    # there are, how many failed to decode or are not data: URIs, and their pixel widths.
    probe = (
        "<script>window.addEventListener('load', () => { const imgs = [...document.images];"
        " const bad = imgs.filter(i => !(i.complete && i.naturalWidth > 0) || !i.src.startsWith('data:'));"
        " document.body.setAttribute('data-images', imgs.length + ':' + bad.length + ':' +"
        " imgs.map(i => i.naturalWidth).join(',')); });</script>"
    )
    page = tmp_path / "probe.html"
    page.write_text(out.read_text().replace("</body>", probe + "</body>"))
    proc = subprocess.run(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=10000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    found = re.search(r'data-images="(\d+):(\d+):([\d,]*)"', proc.stdout)
    assert found, proc.stdout[-2000:] + proc.stderr[-2000:]
    total, bad, widths = int(found.group(1)), int(found.group(2)), found.group(3).split(",")
    assert total >= 4 and bad == 0
    assert all(int(w) > 100 for w in widths)
