"""The web page in a real browser (Debian's Chromium, headless, driven by Playwright) against
the real system: `audio-engine api` and `audio-engine bridge` as subprocesses.

Upload a generated WAV, build gain + eq from the generated form, submit, follow the live
progress to SUCCEEDED, see the before/after images, download the output and check it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from playwright.sync_api import Browser, FilePayload, Page, Route, expect, sync_playwright
from scipy.signal import sosfilt

from cli.stack import Service, Stack
from tests.conftest import sine, write_wav
from tests.rbj import rbj_sos

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
JOB_TIMEOUT_MS = 120_000
IMAGES = ["Before waveform", "Before spectrogram", "After waveform", "After spectrogram"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (see .ci/run)")
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert errors == [], errors


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Stack:
    return Stack(tmp_path_factory.mktemp("web") / "data", extra_env={"AUDIO_ENGINE_POOL_SIZE": "1"})


@pytest.fixture(scope="module")
def system(stack: Stack) -> Iterator[Stack]:
    """API (authentication off: `--dev`) and one bridge, started like in production."""
    api = stack.start("api", "--dev")
    bridge: Service | None = None
    try:
        api.wait_http(f"{stack.url}/healthz")
        bridge = stack.start("bridge")
        api.wait_http(f"{stack.url}/readyz")
        bridge.wait_log("bridge consuming")
        yield stack
    finally:
        if bridge is not None:
            assert bridge.stop() == 0, bridge.log()[-3000:]
        assert api.stop() == 0, api.log()[-3000:]


@pytest.fixture(scope="module")
def secure_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, str]]:
    """An API that wants keys (no bridge: jobs are not run), and the admin key it printed."""
    stack = Stack(tmp_path_factory.mktemp("web-auth") / "data")
    api = stack.start("api", log_name="api-auth")
    try:
        api.wait_http(f"{stack.url}/healthz")
        api.wait_log("ADMIN key was created")
        found = re.search(r"^\s+(ae_[A-Za-z0-9_-]+)\s*$", api.log(), re.MULTILINE)
        assert found, api.log()[-3000:]
        yield stack, found.group(1)
    finally:
        assert api.stop() == 0, api.log()[-3000:]


def loaded(page: Page, alt: str) -> None:
    """Wait until the `<img>` with this alt text has really decoded an image."""
    image = page.get_by_role("img", name=alt, exact=True)
    expect(image).to_be_visible()
    ready = "img => img.complete && img.naturalWidth > 0"
    page.wait_for_function(ready, arg=image.element_handle())


def reference(x: np.ndarray, rate: int) -> np.ndarray:
    sos = np.stack([rbj_sos("peak", 1000.0, 0.7071, 6.0, rate)])
    y: np.ndarray = sosfilt(sos, x.astype(np.float64) * 10 ** (-3 / 20), axis=-1)
    return y


def test_upload_build_chain_watch_compare_download(
    system: Stack, page: Page, tmp_path: Path
) -> None:
    rng = np.random.default_rng(11)
    audio = sine(440.0, 2.0, level_db=-12.0) + 0.05 * rng.standard_normal((2, 96_000)).astype(
        np.float32
    )
    source = write_wav(tmp_path / "web-input.wav", audio)

    page.goto(system.url)
    expect(page.get_by_role("heading", name="Audio engine")).to_be_visible()
    effect = page.get_by_label("Effect", exact=True)
    expect(effect.locator("option")).not_to_have_count(0)

    page.get_by_label("Upload audio").set_input_files(source)
    expect(page.locator("#file-info")).to_contain_text("Uploaded: web-input.wav")
    expect(page.get_by_label("Existing file")).not_to_have_value("")
    loaded(page, "Before waveform")
    loaded(page, "Before spectrogram")

    effect.select_option("gain")
    page.get_by_role("button", name="Add effect").click()
    gain = page.get_by_role("group", name="1. gain")
    gain.get_by_label("db", exact=True).fill("-3")

    effect.select_option("eq")
    page.get_by_role("button", name="Add effect").click()
    band = page.get_by_role("group", name="2. eq").get_by_role("group", name="band 1")
    band.get_by_label("kind", exact=True).select_option("PEAK")
    band.get_by_label("frequency", exact=True).fill("1000")
    band.get_by_label("gainDb", exact=True).fill("6")

    subtype = page.get_by_label("Sample format")
    expect(subtype).to_have_value("FLOAT")
    page.get_by_label("Format", exact=True).select_option("FLAC")
    expect(subtype).to_have_value("PCM_24")  # FLAC holds no float samples
    page.get_by_label("Format", exact=True).select_option("WAV")
    subtype.select_option("PCM_24")
    page.get_by_role("button", name="Process").click()

    status = page.get_by_role("status", name="Job status")
    expect(status).to_have_text("SUCCEEDED", timeout=JOB_TIMEOUT_MS)
    expect(page.locator("#progress-text")).to_have_text("100%")
    expect(page.get_by_role("progressbar", name="Job progress")).to_have_attribute("value", "100")
    expect(page.locator("#errors")).to_be_hidden()
    for alt in IMAGES:
        loaded(page, alt)
    expect(page.get_by_label("After audio")).to_have_attribute("src", re.compile(r"/files/\w+"))

    page.screenshot(path=str(tmp_path / "page.png"), full_page=True)

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download output").click()
    downloaded = tmp_path / "downloaded.wav"
    download_info.value.save_as(downloaded)
    info = sf.info(str(downloaded))
    assert (info.format, info.subtype) == ("WAV", "PCM_24")
    assert (info.samplerate, info.channels, info.frames) == (48_000, 2, 96_000)
    y, _ = sf.read(downloaded, dtype="float64", always_2d=True)
    np.testing.assert_allclose(y.T, reference(audio, 48_000), atol=1e-5)


def test_errors_show_their_code(system: Stack, page: Page) -> None:
    page.goto(system.url)
    fake: FilePayload = {"name": "fake.wav", "mimeType": "audio/wav", "buffer": b"not audio" * 50}
    page.get_by_label("Upload audio").set_input_files(fake)
    alert = page.locator("#errors")
    expect(alert).to_be_visible()
    expect(alert.locator("code")).to_have_text("UNSUPPORTED_AUDIO")


def test_the_key_is_sent_everywhere(
    secure_api: tuple[Stack, str], page: Page, wav_file: Path
) -> None:
    stack, key = secure_api
    page.goto(stack.url)
    expect(page.locator("#errors code").first).to_have_text("UNAUTHENTICATED")

    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Save key").click()
    expect(page.locator("#errors")).to_be_hidden()
    expect(page.get_by_label("Effect", exact=True).locator("option")).not_to_have_count(0)
    page.get_by_label("Upload audio").set_input_files(wav_file)
    expect(page.locator("#file-info")).to_contain_text("Uploaded: tone.wav")
    # <img> and <audio> cannot send the header: they get blob URLs fetched with it.
    loaded(page, "Before waveform")
    loaded(page, "Before spectrogram")
    expect(page.get_by_label("Before audio")).to_have_attribute("src", re.compile(r"^blob:"))

    # The subscription authenticates in connection_init: with no bridge the job stays QUEUED,
    # and only the live updates report it CANCELLED after the page cancels it.
    page.get_by_label("Effect", exact=True).select_option("gain")
    page.get_by_role("button", name="Add effect").click()
    page.get_by_role("group", name="1. gain").get_by_label("db", exact=True).fill("0")
    page.get_by_role("button", name="Process").click()
    expect(page.get_by_role("status", name="Job status")).to_have_text("QUEUED")
    page.get_by_role("button", name="Cancel job").click()
    expect(page.get_by_role("status", name="Job status")).to_have_text("CANCELLED")
    expect(page.locator("#errors")).to_be_hidden()

    # The key survives a reload (localStorage) and reaches the subscription's connection_init.
    page.reload()
    expect(page.get_by_label("API key")).to_have_value(key)
    expect(page.locator("#errors")).to_be_hidden()
    expect(page.get_by_label("Existing file").locator("option")).not_to_have_count(1)


def test_graphiql_runs_from_local_copies_with_the_key(
    secure_api: tuple[Stack, str], browser: Browser
) -> None:
    """GraphiQL at /graphql renders and answers, a query over HTTP and a subscription over
    its websocket, with no other host reachable and no Content-Security-Policy violation;
    the key comes from its Headers pane."""
    stack, key = secure_api
    elsewhere: list[str] = []
    problems: list[str] = []

    def refuse(route: Route) -> None:
        elsewhere.append(route.request.url)
        route.abort()

    def run(query: str, expected: str) -> None:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.route(lambda url: not url.startswith(stack.url), refuse)
        page.on("pageerror", lambda exc: problems.append(str(exc)))
        page.on(
            "console",
            lambda message: (
                problems.append(message.text) if "Content Security Policy" in message.text else None
            ),
        )
        headers = json.dumps(json.dumps({"Authorization": f"Bearer {key}"}))
        page.add_init_script(
            f"localStorage.setItem('graphiql:headers', {headers});"
            f"localStorage.setItem('graphiql:query', {json.dumps(query)});"
        )
        try:
            page.goto(f"{stack.url}/graphql")
            expect(page.locator(".graphiql-container")).to_be_visible()
            page.get_by_role("button", name=re.compile("Execute")).click()
            expect(page.locator(".graphiql-response")).to_contain_text(expected)
        finally:
            context.close()

    run("{ viewer { owner admin } }", '"owner": "admin"')
    # A subscription carries the same headers in connection_init: it runs (no such job).
    run('subscription { jobUpdates(jobId: "missing") { status } }', "no job with id 'missing'")
    assert elsewhere == []
    assert problems == []


def test_an_optional_object_parameter_is_sent_only_when_used(
    system: Stack, page: Page, wav_file: Path
) -> None:
    """denoise's `profile` is an OBJECT: unticked it is null; ticked, its fields are sent and
    checked against the file (1 s long: a profile ending at 5 s is refused, naming it)."""
    page.goto(system.url)
    page.get_by_label("Upload audio").set_input_files(wav_file)
    expect(page.locator("#file-info")).to_contain_text("Uploaded: tone.wav")
    page.get_by_label("Effect", exact=True).select_option("denoise")
    page.get_by_role("button", name="Add effect").click()
    step = page.get_by_role("group", name="1. denoise")
    expect(step.get_by_label("startS", exact=True)).to_be_hidden()
    step.get_by_label("use profile").check()
    step.get_by_label("startS", exact=True).fill("0")
    step.get_by_label("endS", exact=True).fill("5")
    page.get_by_role("button", name="Process").click()
    alert = page.locator("#errors")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text("denoise.profile.endS")
    step.get_by_label("endS", exact=True).fill("0.5")
    page.get_by_role("button", name="Process").click()
    expect(page.get_by_role("status", name="Job status")).to_have_text(
        "SUCCEEDED", timeout=JOB_TIMEOUT_MS
    )


def test_several_files_go_as_one_batch(system: Stack, page: Page, tmp_path: Path) -> None:
    """Pick two uploads in the batch list, build a chain, submit them as one batch and follow
    it live to SUCCEEDED, each file's job listed with its status."""
    page.goto(system.url)
    for name, freq in (("batch-a.wav", 330.0), ("batch-b.wav", 550.0)):
        page.get_by_label("Upload audio").set_input_files(
            write_wav(tmp_path / name, sine(freq, 0.5))
        )
        expect(page.locator("#file-info")).to_contain_text(f"Uploaded: {name}")
    several = page.get_by_label("Several files (a batch: one job each)")
    batch_button = page.get_by_role("button", name="Submit batch")
    expect(batch_button).to_be_disabled()
    labels = several.locator("option", has_text="batch-").all_inner_texts()
    assert len(labels) == 2, labels
    several.select_option(label=labels)
    page.get_by_label("Effect", exact=True).select_option("gain")
    page.get_by_role("button", name="Add effect").click()
    page.get_by_role("group", name="1. gain").get_by_label("db", exact=True).fill("-6")
    batch_button.click()

    status = page.get_by_role("status", name="Batch status")
    expect(status).to_have_text("SUCCEEDED", timeout=JOB_TIMEOUT_MS)
    expect(page.locator("#batch-progress-text")).to_have_text("100%")
    jobs = page.get_by_role("list", name="Batch jobs").locator("li")
    expect(jobs).to_have_count(2)
    expect(jobs.nth(0)).to_have_attribute("data-status", "SUCCEEDED")
    expect(jobs.nth(1)).to_have_attribute("data-status", "SUCCEEDED")
    expect(page.locator("#errors")).to_be_hidden()
