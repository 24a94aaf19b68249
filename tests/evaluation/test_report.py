"""The HTML report parses, embeds each plot as a readable PNG, and says so when a
section has nothing to show."""

from __future__ import annotations

import base64
import io
from html.parser import HTMLParser

import matplotlib.image as mpimg
import numpy as np

from recsys_cli.evaluation.report import render_report
from recsys_cli.evaluation.suite import Settings, evaluate
from recsys_cli.tasks.evaluate import finite
from tests.evaluation.test_suite import planted_inputs

VOID = {"meta", "img", "br", "hr", "link", "input"}
PNG_PREFIX = "data:image/png;base64,"


class Outline(HTMLParser):
    """Images, section ids and text of a page, checking that tags nest properly."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.images: dict[str, str] = {}
        self.sections: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "img":
            self.images[attributes["id"] or ""] = attributes["src"] or ""
        if tag == "section":
            self.sections.append(attributes["id"] or "")
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1] if self.stack else None}>"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html: str) -> Outline:
    outline = Outline()
    outline.feed(html)
    outline.close()
    assert outline.stack == [], f"unclosed tags: {outline.stack}"
    return outline


def summary(probabilities: bool = True) -> dict[str, object]:
    result = evaluate(planted_inputs(probabilities), Settings(ks=[1, 5, 10], primary="ndcg@5", resamples=100))
    # The report is rendered from what metrics.json holds: NaN already turned to null.
    return finite(result.summary | {"model": "Planted", "part": "test", "run": "runs/planted/1", "fold": "fold-0"})


def test_report_parses_and_embeds_every_plot() -> None:
    html, images = render_report(summary())
    page = parse(html)
    expected = {"metrics", "reliability", "exposure_by_tier", "segment_gaps"}
    assert set(images) == expected
    assert set(page.images) == {f"plot-{name}" for name in expected}
    for name, src in page.images.items():
        assert src.startswith(PNG_PREFIX), name
        png = base64.b64decode(src.removeprefix(PNG_PREFIX))
        assert png == images[name.removeprefix("plot-")]
        height, width, _ = mpimg.imread(io.BytesIO(png), format="png").shape
        assert height > 100 and width > 100, name
    assert page.sections == ["flags", "accuracy", "beyond", "calibration", "exposure", "segments"]
    text = " ".join(page.text)
    assert "Evaluation of Planted on test" in text and "ndcg@5 gap across gender" in text
    assert "http" not in html.replace("runs/planted", "")  # self-contained: nothing fetched from elsewhere


def test_report_without_probabilities_says_why() -> None:
    html, images = render_report(summary(probabilities=False))
    page = parse(html)
    assert "reliability" not in images and "plot-reliability" not in page.images
    assert "Not available: PlantedModel gives ranking scores, not engagement probabilities." in " ".join(page.text)


def slices_section() -> dict[str, object]:
    """What `recsys evaluate --baseline` adds: one slice that loses, one too small to judge."""
    from recsys_cli.evaluation.segments import cold_start
    from recsys_cli.evaluation.slices import error_slices

    model, baseline = np.r_[np.zeros(30), np.ones(3)], np.r_[np.full(30, 0.5), np.zeros(3)]
    result = error_slices(model, baseline, [cold_start(np.r_[np.ones(30), np.zeros(3)])], resamples=100)
    return {
        "baseline": {"run": "/runs/popularity/1", "label": "popularity/<1>", "model": "Popularity"},
        "metric": "ndcg@5",
        "item_metric": "recall@5",
        "users": {"compared": 33, "left_out": 2, "only_model": 2, "only_baseline": 0},
        "min_users": 20,
        "overall": result.overall.to_json(),
        "rows": [s.to_json() for s in result.slices],
    }


def test_report_shows_the_error_slices_against_a_baseline() -> None:
    html, images = render_report(summary() | {"slices": slices_section()})
    page = parse(html)
    assert page.sections[:3] == ["flags", "accuracy", "slices"]
    assert "plot-error_slices" in page.images and "error_slices" in images
    height, width, _ = mpimg.imread(io.BytesIO(images["error_slices"]), format="png").shape
    assert height > 50 and width > 100
    text = " ".join(page.text)
    assert "Error slices against popularity/<1>" in text and "popularity/&lt;1&gt;" in html  # escaped
    assert "33 users both scored (2 left out: 2 scored only by the model" in text
    assert "LOSES" in text and "too few users" in text
