"""The App in a real browser: ``vtondata browse`` serves a generated MPV dataset on localhost and headless
Chromium (Debian ``chromium``) renders the grid; driven over the DevTools protocol on a pipe (no Selenium).

Also usable as a script to take the README screenshot: ``python tests/annotate/test_browse_browser.py URL OUT.png``.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


class Chromium:
    """Headless Chromium driven with the DevTools protocol over ``--remote-debugging-pipe`` (fds 3 and 4)."""

    def __init__(self, user_data_dir: Path, size=(1400, 900), exe: Path = CHROMIUM):
        to_r, self._w = os.pipe()   # we write commands, Chromium reads them on fd 3
        self._r, from_w = os.pipe()  # Chromium writes replies on fd 4

        def child_fds():
            a, b = os.dup(to_r), os.dup(from_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [str(exe), *FLAGS, "--remote-debugging-pipe", f"--user-data-dir={user_data_dir}",
             f"--window-size={size[0]},{size[1]}", "about:blank"],
            preexec_fn=child_fds, close_fds=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_r)
        os.close(from_w)
        self._buf, self._id, self.size = b"", 0, size
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.send("Emulation.setDeviceMetricsOverride", {"width": size[0], "height": size[1], "deviceScaleFactor": 1,
                                                         "mobile": False}, page=True)

    def send(self, method: str, params: dict | None = None, page: bool = False) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if page:
            msg["sessionId"] = self.session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        while True:
            while b"\0" not in self._buf:
                chunk = os.read(self._r, 1 << 20)
                if not chunk:
                    raise RuntimeError("Chromium closed the DevTools pipe")
                self._buf += chunk
            raw, self._buf = self._buf.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def goto(self, url: str) -> None:
        self.send("Page.enable", page=True)
        self.send("Page.navigate", {"url": url}, page=True)

    def js(self, expression: str):
        r = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True}, page=True)
        return r.get("result", {}).get("value")

    def text(self) -> str:
        """The visible text plus the values of input boxes (the App shows the dataset name in one)."""
        return self.js("document.body ? document.body.innerText + '\\n' + Array.from("
                       "document.querySelectorAll('input')).map(e => e.value).join('\\n') : ''") or ""

    def screenshot(self, path: Path) -> None:
        data = self.send("Page.captureScreenshot", {"format": "png"}, page=True)["data"]
        Path(path).write_bytes(base64.b64decode(data))

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (RuntimeError, OSError):
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        for fd in (self._r, self._w):
            try:
                os.close(fd)
            except OSError:
                pass


def wait_for_grid(browser: Chromium, expect: list[str], timeout: float = 90.0) -> str:
    """Poll until every string of ``expect`` is on the page and the grid has drawn images; returns the text."""
    t0, text = time.time(), ""
    while time.time() - t0 < timeout:
        text = browser.text()
        drawn = browser.js("document.querySelectorAll('canvas, img').length") or 0
        if all(e in text for e in expect) and drawn >= 2:
            time.sleep(2.0)  # let the thumbnails finish painting
            return browser.text()
        time.sleep(0.5)
    raise AssertionError(f"the App did not show {expect} within {timeout:.0f} s; page text: {text[:500]!r}")


def browser_dataset(text: str) -> str:
    """The dataset name the App's selector shows (the line of the text equal to a vtondata dataset name)."""
    return next((ln for ln in text.splitlines() if ln.startswith("vtondata-")), "")


def dismiss_popups(browser: Chromium) -> None:
    """Close the App's promotional pop-up (a 'Dismiss' button) so it does not cover the grid."""
    browser.js("Array.from(document.querySelectorAll('button, div, span')).filter(e => e.innerText === 'Dismiss')"
               ".forEach(e => e.click())")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _lan_address():
    """A non-loopback address of this machine, if any (to check the App is not reachable there)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # no packet is sent for UDP connect
            ip = s.getsockname()[0]
        return None if ip.startswith("127.") else ip
    except OSError:
        return None


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    if not CHROMIUM.exists():
        pytest.skip("headless Chromium not found at /usr/bin/chromium (Debian: apt-get install chromium chromium-driver)")
    os.environ["FIFTYONE_DO_NOT_TRACK"] = "true"
    os.environ["FIFTYONE_DATABASE_VALIDATION"] = "false"
    os.environ.pop("FIFTYONE_DATABASE_URI", None)
    db = tmp_path_factory.getbasetemp() / "fiftyone-db"
    os.environ["FIFTYONE_DATABASE_DIR"] = str(db)
    from annotate import browse
    from vtondata.fixtures import make_fixture
    from vtondata.prepare import prepare

    fo = browse.fiftyone()
    fo.config.database_uri, fo.config.database_dir = None, str(db)
    browse.connect()
    base = tmp_path_factory.mktemp("browser")
    root = make_fixture("mpv", base / "root", n=6, size="256x192", seed=4)
    mdir = prepare("mpv", root, out=base / "out", quiet=True).manifest_dir
    name = f"vtondata-browser-{uuid.uuid4().hex[:6]}"
    browse.build(manifest_dir=mdir, name=name, quiet=True)
    port = _free_port()
    log = open(base / "app.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "cli", "browse", "mpv", "--manifest", str(mdir), "--name", name,
                             "--port", str(port)], cwd=REPO, env=dict(os.environ), stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/datasets/{name}"
    try:
        t0 = time.time()
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.time() - t0 > 120:
                    log.flush()
                    raise AssertionError(f"App did not start: {(base / 'app.log').read_text()[-2000:]}")
                time.sleep(0.5)
        yield {"url": url, "name": name, "port": port, "log": base / "app.log", "dir": base, "samples": 18}
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)  # the CLI and the App server it started (its own session)
            proc.wait(20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        log.close()
        fo.delete_dataset(name)


@pytest.mark.browser
def test_app_grid_shows_dataset_and_count(served):
    browser = Chromium(served["dir"] / "chrome-profile")
    try:
        browser.goto(served["url"])
        text = wait_for_grid(browser, [served["name"], f"{served['samples']} samples"])
        dismiss_popups(browser)
        time.sleep(0.5)
        shot = served["dir"] / "app.png"
        browser.screenshot(shot)
    finally:
        browser.close()
    assert served["name"] in text and f"{served['samples']} samples" in text
    assert browser_dataset(text) == served["name"]
    assert "parse" in text and "pose" in text and "garment_mask" in text  # the label fields in the sidebar
    from PIL import Image
    import numpy as np

    im = np.asarray(Image.open(shot).convert("RGB"))
    assert im.shape[:2] == (900, 1400) and im.std() > 20  # a rendered page, not a blank one
    assert f"FiftyOne App: {served['url']}" in served["log"].read_text()


@pytest.mark.browser
def test_app_bound_to_localhost_only(served):
    with socket.create_connection(("127.0.0.1", served["port"]), timeout=5):
        pass
    lan = _lan_address()
    if lan is None:
        pytest.skip("no non-loopback address on this machine to probe")
    with pytest.raises(OSError):
        socket.create_connection((lan, served["port"]), timeout=3).close()


if __name__ == "__main__":  # README screenshot: python tests/annotate/test_browse_browser.py URL OUT.png
    import tempfile

    b = Chromium(Path(tempfile.mkdtemp()))
    try:
        b.goto(sys.argv[1])
        wait_for_grid(b, sys.argv[3:] or ["samples"])
        dismiss_popups(b)
        time.sleep(1.0)
        b.screenshot(Path(sys.argv[2]))
    finally:
        b.close()
