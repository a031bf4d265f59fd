"""The demo report in a real browser: Debian's Chromium, headless, driven by selenium.

Nothing is downloaded: selenium is pointed at Debian's ``/usr/bin/chromedriver`` (``.ci/run``
installs ``chromium`` and ``chromium-driver`` when absent). The demo report is built once for the
module; every page is opened at 1280 px (desktop) and 390 px (phone, with mobile emulation so the
viewport tag counts) and checked:

- no element is wider than the viewport (unless it sits in a box that scrolls or clips);
- every page has a title and a link to the dashboard;
- no owner page (the dashboard and ``owner/*.html``) shows a word of the jargon list;
- no request leaves the page (Chromium's performance log: every request is the page itself or a
  ``data:`` URI);
- a screenshot of each page at each width is saved to ``<run>/screenshots/``.

The checkers are plain functions, and the tests at the end prove they fail: a copy of an owner
page with a jargon word put back, and one with a CDN ``<script>`` put back, are flagged.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WIDTHS = {"desktop": 1280, "phone": 390}
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]

# Words no clinic owner should meet. Plain substrings are matched as written; names in WORDS as
# whole words. "_" inside a displayed word (a code name) and Greek letters are checked apart.
SUBSTRINGS = ["(Intercept)", "[T.", "{'", "':", "p_value", "std_error", "conf_low", "conf_high", "τ²", "χ²"]
WORDS = ["REML", "ML", "Satterthwaite", "lmerTest", "lme4", "emmeans", "VarCorr", "GLMM", "GEE", "Laplace",
         "estimand", "estimands", "nan", "NaN", "None", "True", "False", "inf", "p-value", "p-values",
         "df", "SD", "docs"]
_WORD = re.compile(r"(?<![\w-])(" + "|".join(re.escape(w) for w in WORDS) + r")(?![\w-])")
_SNAKE = re.compile(r"\b[A-Za-z0-9]+_[A-Za-z0-9_]+\b")
_GREEK = re.compile(r"[\u0370-\u03ff]")
_P_EQUALS = re.compile(r"\bp\s*[=<>]\s*0?\.\d+")


def jargon_in(text: str) -> list[str]:
    """Every jargon hit in a page's displayed text (empty when the page is plain)."""
    hits = [s for s in SUBSTRINGS if s in text]
    hits += sorted({m.group(1) for m in _WORD.finditer(text)})
    hits += sorted({f"code name {m.group(0)!r}" for m in _SNAKE.finditer(text)})
    hits += sorted({f"Greek {m.group(0)!r}" for m in _GREEK.finditer(text)})
    hits += [f"p-value {m.group(0)!r}" for m in _P_EQUALS.finditer(text)]
    return hits


def outside_requests(performance_log: list[dict], page_url: str) -> list[str]:
    """URLs the page requested other than itself and ``data:`` URIs (from Chromium's performance log)."""
    urls = []
    for entry in performance_log:
        message = json.loads(entry["message"])["message"]
        if message.get("method") != "Network.requestWillBeSent":
            continue
        params = message["params"]
        url = params["request"]["url"]
        # The browser's own pages (chrome://new-tab-page on start-up) are not the report's.
        if params.get("documentURL", "").split("#")[0] != page_url and url.split("#")[0] != page_url:
            continue
        if not (url.startswith("data:") or url.split("#")[0] == page_url):
            urls.append(url)
    return urls


# Elements wider than the viewport and not inside a box that scrolls or clips them sideways.
_TOO_WIDE = """
const vw = document.documentElement.clientWidth;
const clipped = el => { for (let p = el.parentElement; p; p = p.parentElement) {
  const o = getComputedStyle(p).overflowX; if (o === 'auto' || o === 'scroll' || o === 'hidden') {
    if (p.getBoundingClientRect().right <= vw + 1) return true; } } return false; };
const out = [];
for (const el of document.body.querySelectorAll('*')) {
  const r = el.getBoundingClientRect();
  if (r.width === 0 || r.height === 0) continue;
  if ((r.right > vw + 1 || r.left < -1) && !clipped(el)) out.push(el.tagName + '.' + el.className + ' ' + Math.round(r.right));
}
if (document.documentElement.scrollWidth > vw + 1) out.push('page scrolls sideways: ' + document.documentElement.scrollWidth);
return out.slice(0, 10);
"""


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory):
    from analysis.run.runner import run_suite

    out = tmp_path_factory.mktemp("browser") / "demo"
    outcome = run_suite(ROOT / "config" / "demo.yaml", out=out, progress=False)
    assert outcome.status == "succeeded", outcome.error
    return out


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        message = "Debian's chromium and chromium-driver are not installed (.ci/run installs them)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS + [f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


def open_page(driver, path: Path, width: int) -> dict:
    """Load ``path`` at ``width`` px and return what the checks need."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 600})
    driver.get_log("performance")  # drop what earlier pages logged
    url = path.resolve().as_uri()
    driver.get(url)
    return {
        "url": url,
        "title": driver.title,
        "text": driver.execute_script("return document.body.innerText"),
        "dashboard_links": driver.execute_script(
            "return [...document.querySelectorAll('a')].filter(a => /(^|\\/)index\\.html$/.test("
            "a.getAttribute('href') || '') && a.offsetParent !== null).length"),
        "too_wide": driver.execute_script(_TOO_WIDE),
        "requests": outside_requests(driver.get_log("performance"), url),
    }


def screenshot(driver, path: Path) -> None:
    height = driver.execute_script("return document.documentElement.scrollHeight")
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": driver.execute_script("return document.documentElement.clientWidth"),
                 "height": min(height, 12000), "scale": 1}})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot["data"]))


def report_pages(run_dir: Path) -> list[tuple[str, Path]]:
    owner = [("owner", run_dir / "index.html")] + [("owner", p) for p in sorted(run_dir.glob("owner/*.html"))]
    return owner + [("researcher", p) for p in sorted(run_dir.glob("researcher/*.html"))] + \
        [("audit", run_dir / "audit.html")]


@pytest.fixture(scope="module")
def visited(demo_report, browser):
    """Every page opened at both widths (screenshots saved as they go): (view, page, width, seen)."""
    out = []
    for view, path in report_pages(demo_report):
        name = str(path.relative_to(demo_report))
        for device, width in WIDTHS.items():
            seen = open_page(browser, path, width)
            screenshot(browser, demo_report / "screenshots" / device / name.replace("/", "-").replace(".html", ".png"))
            out.append((view, name, width, seen))
    return out


def test_every_page_in_chromium(demo_report, visited):
    assert len(visited) == len(WIDTHS) * (2 + 2 * len(list((demo_report / "notebooks").glob("*.ipynb"))))
    problems = []
    for view, name, width, seen in visited:
        where = f"{name} at {width}px"
        if not seen["title"] or " — " not in seen["title"]:
            problems.append(f"{where}: title {seen['title']!r}")
        if not seen["dashboard_links"]:
            problems.append(f"{where}: no visible link to the dashboard")
        if seen["too_wide"]:
            problems.append(f"{where}: wider than the viewport: {seen['too_wide']}")
        if seen["requests"]:
            problems.append(f"{where}: requests leave the page: {seen['requests']}")
        if view == "owner" and width == WIDTHS["desktop"] and jargon_in(seen["text"]):
            problems.append(f"{where}: jargon {jargon_in(seen['text'])}")
    assert not problems, "\n".join(problems)


_CLAIM_CELLS = """
const vw = document.documentElement.clientWidth;
return [...document.querySelectorAll('table.claims tbody tr')].map(tr =>
  [...tr.children].map(td => { const r = td.getBoundingClientRect();
    return {label: td.dataset.label, width: r.width / vw, top: r.top}; }));
"""


def test_claims_table_is_a_table_on_a_desktop_and_cards_on_a_phone(demo_report, browser):
    """At 390 px every claim is a card, one labelled line per column, each line at least 80 % of
    the screen wide (the five-column table squeezed "What the data show" to a word per line); at
    1280 px it stays one row per claim."""
    for width in WIDTHS.values():
        open_page(browser, demo_report / "index.html", width)
        rows = browser.execute_script(_CLAIM_CELLS)
        assert rows and all(len(r) == 5 for r in rows)
        assert [c["label"] for c in rows[0]] == ["Claim", "Verdict", "How firm", "What the data show",
                                                 "What it rests on"]
        for cells in rows:
            tops = [c["top"] for c in cells]
            if width == WIDTHS["phone"]:
                assert min(c["width"] for c in cells) >= 0.8, cells
                assert tops == sorted(tops) and len(set(tops)) == 5, cells  # stacked
            else:
                assert max(tops) - min(tops) < 1, cells  # one row
    text = open_page(browser, demo_report / "index.html", WIDTHS["phone"])["text"]
    assert "What the data show" in text  # each card line names its column


# -- the checks fail when what they guard against is put back --------------------------------------

def test_jargon_put_back_into_an_owner_page_is_flagged(demo_report, browser, tmp_path):
    page = demo_report / "owner" / "03_pain.html"
    assert jargon_in(open_page(browser, page, 1280)["text"]) == []
    for word in ("Satterthwaite df", "p_value 0.03", "(Intercept)", "deep_tissue_massage", "nan", "τ² = 0.1"):
        bad = tmp_path / "owner" / f"bad-{len(word)}.html"
        bad.parent.mkdir(exist_ok=True)
        bad.write_text(page.read_text(encoding="utf-8").replace("</main>", f"<p>{word}</p></main>", 1),
                       encoding="utf-8")
        assert jargon_in(open_page(browser, bad, 1280)["text"]), word


def test_a_cdn_script_put_back_is_flagged(demo_report, browser, tmp_path):
    page = demo_report / "owner" / "03_pain.html"
    assert open_page(browser, page, 1280)["requests"] == []
    bad = tmp_path / "cdn.html"
    cdn = '<script src="https://cdnjs.cloudflare.com/ajax/libs/require.js/2.1.10/require.min.js"></script>'
    bad.write_text(page.read_text(encoding="utf-8").replace("</head>", cdn + "</head>", 1), encoding="utf-8")
    requests = open_page(browser, bad, 1280)["requests"]
    assert any("cdnjs.cloudflare.com" in url for url in requests), requests


def test_a_table_too_wide_for_a_phone_is_flagged(demo_report, browser, tmp_path):
    page = demo_report / "index.html"
    bad = tmp_path / "wide.html"
    wide = '<div style="width:900px">a box wider than a phone</div>'
    bad.write_text(page.read_text(encoding="utf-8").replace("</main>", wide + "</main>", 1), encoding="utf-8")
    assert open_page(browser, bad, 390)["too_wide"]


def test_jargon_checker_on_plain_and_technical_text():
    assert jargon_in("Pain eased by 0.7 points with deep tissue massage (95% interval 0.2 to 1.3).") == []
    assert jargon_in("fixed effects by REML") == ["REML"]
    assert jargon_in("n_switchers 13") == ["code name 'n_switchers'"]
    assert jargon_in("p = 0.03") == ["p-value 'p = 0.03'"]
    assert jargon_in("a {'estimate': 25.03} dict")[0] == "{'"
    assert jargon_in("well-known non-inferiority") == []  # hyphens are words, not code


def test_screenshots_were_saved(demo_report, visited):
    """Every page at both widths has its screenshot in the run folder's screenshots/.

    ``REPORT_SCREENSHOTS=docs/screenshots`` also copies those of the dashboard and the owner pages
    there, and the desktop dashboard to docs/dashboard-screenshot.png (how the docs are refreshed).
    """
    shots = sorted((demo_report / "screenshots").rglob("*.png"))
    assert len(shots) == len(WIDTHS) * len(report_pages(demo_report))
    assert all(p.stat().st_size > 1000 for p in shots)
    target = os.environ.get("REPORT_SCREENSHOTS")
    if target:
        for shot in shots:
            if shot.name == "index.png" or shot.name.startswith("owner-"):
                out = Path(target) / shot.parent.name / shot.name
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(shot, out)
        shutil.copy(demo_report / "screenshots" / "desktop" / "index.png", Path(target).parent / "dashboard-screenshot.png")
