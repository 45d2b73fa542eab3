"""`tagrank serve`: the API in-process (TestClient), the batcher, and the page in a real headless browser."""

import io
import json
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from tagrank.serve import ServeSettings, create_app  # noqa: E402
from tagrank.tagger import Tagger  # noqa: E402

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(scope="module")
def tagger():
    return Tagger.load()


@pytest.fixture(scope="module")
def client(tagger):
    with TestClient(create_app(tagger, ServeSettings(max_upload_mb=1.0, backend="torch"))) as c:
        yield c


def _photo(name: str) -> tuple:
    return ("photos", (name, (EXAMPLES / name).read_bytes(), "image/jpeg"))


def test_tags_have_the_shape_of_rank_json_and_its_results(client, tagger):
    response = client.post("/v1/tags", files=[_photo("cat.jpg"), _photo("coffee.jpg")], data={"top": "3"})
    assert response.status_code == 200, response.text
    records = response.json()
    offline = tagger.rank([EXAMPLES / "cat.jpg", EXAMPLES / "coffee.jpg"], top=3).results
    assert [r["image"] for r in records] == ["cat.jpg", "coffee.jpg"]
    for served, ranked in zip(records, offline):
        assert [t["tag"] for t in served["tags"]] == [t["tag"] for t in ranked["tags"]]
        assert set(served["tags"][0]) == {"rank", "tag", "score", "confidence"}
        assert served["tags"][0]["score"] == pytest.approx(ranked["tags"][0]["score"], rel=1e-5)


@pytest.mark.parametrize("backend", ["openvino", "onnxruntime"])
def test_the_service_runs_the_cnn_where_it_is_told_with_the_same_tags(tagger, backend):
    from tagrank.images.runtimes import installed

    if not installed(backend):
        pytest.skip(f"{backend} is not installed")
    offline = tagger.rank([EXAMPLES / "cat.jpg", EXAMPLES / "coffee.jpg"], top=5, backend="torch").results
    with TestClient(create_app(tagger, ServeSettings(backend=backend))) as c:
        assert c.app.state.batcher.forward is not None
        records = c.post("/v1/tags", files=[_photo("cat.jpg"), _photo("coffee.jpg")], data={"top": "5"}).json()
    for served, ranked in zip(records, offline):
        assert [t["tag"] for t in served["tags"]] == [t["tag"] for t in ranked["tags"]]
        assert served["tags"][0]["score"] == pytest.approx(ranked["tags"][0]["score"], rel=1e-4)


def test_vocabularies_named_and_inline(client):
    inline = client.post("/v1/tags", files=[_photo("cat.jpg")], data={"vocab": "rocket, espresso\nkitten", "top": "1"})
    assert inline.json()[0]["tags"][0]["tag"] == "kitten"
    accented = client.post("/v1/tags", files=[_photo("cat.jpg")], data={"vocab": "café, kätzchen, kitten", "top": "3"})
    assert {t["tag"] for t in accented.json()[0]["tags"]} == {"café", "kätzchen", "kitten"}  # UTF-8 text as sent
    as_json = client.post("/v1/tags", files=[_photo("coffee.jpg")], data={"vocab": '["rocket", "espresso"]', "top": "1"})
    assert as_json.json()[0]["tags"][0]["tag"] == "espresso"
    named = client.post("/v1/tags", files=[_photo("coffee.jpg")], data={"vocab": "nuswide81", "top": "2"})
    assert named.status_code == 200 and len(named.json()[0]["tags"]) == 2
    listed = client.get("/v1/vocabularies").json()
    assert listed["named"]["nuswide81"] == 81 and listed["default"]["size"] > 1000


@pytest.mark.parametrize("files, data, status, needle", [
    ([("photos", ("notes.jpg", b"not an image", "image/jpeg"))], {}, 422, "notes.jpg: cannot decode image"),
    ([_photo("cat.jpg")], {"vocab": "/etc/passwd"}, 400, "unknown vocabulary '/etc/passwd'"),
    ([_photo("cat.jpg")], {"top": "0"}, 400, "top must be a positive number"),
    ([_photo("cat.jpg")], {"top": "many"}, 422, "top:"),
    ([_photo("cat.jpg")], {"threshold": "2"}, 400, "between 0 and 1"),
    ([_photo("cat.jpg")], {"vocab": "[1, 2]"}, 400, "list of strings"),
    ([_photo("cat.jpg")], {"vocab": b"th\xff\xfe, dog"}, 400, "form field 'vocab' is not valid utf-8 text"),
    ([], {}, 422, "photos:"),
])
def test_bad_requests_get_a_4xx_naming_the_problem(client, files, data, status, needle):
    response = client.post("/v1/tags", files=files, data=data)
    assert response.status_code == status and needle in response.json()["error"], response.text


def test_bad_photos_are_named_and_the_good_ones_tagged_and_the_server_keeps_serving(client):
    truncated = (EXAMPLES / "cat.jpg").read_bytes()[:3000]
    big = io.BytesIO()
    Image.new("1", (10100, 10000)).save(big, format="PNG")  # 101 MP in a small file: a decompression bomb
    response = client.post("/v1/tags", files=[
        ("photos", ("cut.jpg", truncated, "image/jpeg")), _photo("cat.jpg"),
        ("photos", ("bomb.png", big.getvalue(), "image/png"))])
    assert response.status_code == 200
    cut, cat, bomb = response.json()
    assert "cut.jpg" in cut["error"] and cat["tags"] and "image too large (10100x10000" in bomb["error"]
    huge = ("photos", ("huge.jpg", b"\xff" * (2 * 1024 * 1024), "image/jpeg"))
    over = client.post("/v1/tags", files=[huge])
    assert over.status_code == 413 and "huge.jpg: upload over the 1 MB limit" in over.json()["error"]
    assert client.get("/v1/health").json()["status"] == "ok"
    assert client.post("/v1/tags", files=[_photo("coffee.jpg")]).status_code == 200


def test_page_and_docs_are_served_without_external_assets(client):
    page = client.get("/")
    assert page.status_code == 200 and "<title>tagrank</title>" in page.text
    assert "http://" not in page.text and "https://" not in page.text
    assert client.get("/openapi.json").json()["paths"]["/v1/tags"]["post"]


def test_concurrent_requests_share_cnn_batches(tagger):
    from concurrent.futures import Future

    from tagrank.serve.batcher import Batcher, Job

    array = tagger.backbone.preprocess(Image.open(EXAMPLES / "cat.jpg").convert("RGB"))
    batcher = Batcher(tagger, max_batch=32, max_wait=0.5)
    try:
        small = tagger.warm(tagger.prepare(["cat", "rocket"], persist=False))
        futures: list[Future] = [batcher.submit(Job([array], None if i % 2 else small, 1, None)) for i in range(6)]
        results = [f.result(timeout=60) for f in futures]
    finally:
        batcher.close()
    assert batcher.batches == 1 and batcher.photos == 6  # six requests, one CNN batch
    assert results[0][0][0]["tag"] == "cat" and len(results[1][0]) == 1


# -- the page in a real browser ---------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_page_tags_a_photo_in_a_headless_browser(tagger, tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver")
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver_path = shutil.which("chromedriver")
    if not browser or not driver_path:
        pytest.skip("no chromium/chromedriver (Debian: apt-get install chromium chromium-driver)")
    import uvicorn
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(tagger), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=driver_path), options=options)
    try:
        driver.get(f"http://127.0.0.1:{port}/")
        driver.find_element(By.ID, "file").send_keys(str(EXAMPLES / "cat.jpg"))
        WebDriverWait(driver, 60).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".tag .name")) == 5)
        shown = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".tag .name")]
        driver.save_screenshot(str(tmp_path / "page.png"))
    finally:
        driver.quit()
        server.should_exit = True
        thread.join(timeout=10)
    expected = [t["tag"] for t in tagger.rank([EXAMPLES / "cat.jpg"], top=5).results[0]["tags"]]
    assert shown == expected and (tmp_path / "page.png").stat().st_size > 10_000
    print(json.dumps({"browser_tags": shown}))


def test_serve_searches_as_told_and_refuses_an_unknown_search(cli, monkeypatch):
    import uvicorn

    from tests.conftest import assert_one_error

    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: served.update(app=app, **options))
    loaded = []
    original = Tagger.load.__func__
    monkeypatch.setattr(Tagger, "load", classmethod(lambda cls, *args: loaded.append(args) or original(cls, *args)))
    assert cli("serve", "--method", "conse", "--search", "exact", "--port", "8123").code == 0
    assert loaded[-1][-1] == "exact" and served["port"] == 8123
    assert_one_error(cli("serve", "--search", "fastest"), "--search must be one of")


def test_a_request_over_its_size_is_refused_before_it_is_read(tagger):
    """The whole request has a limit: announced by Content-Length or passed while streaming, it is a 413 JSON."""
    with TestClient(create_app(tagger, ServeSettings(max_upload_mb=1.0, max_request_mb=2.0))) as client:
        photos = [("photos", (f"{i}.jpg", b"\xff" * (900 * 1024), "image/jpeg")) for i in range(3)]
        response = client.post("/v1/tags", files=photos)
        assert response.status_code == 413 and "request over the 2 MB limit" in response.json()["error"]

        def chunks():  # no Content-Length: the limit is found while reading
            for _ in range(40):
                yield b"x" * (100 * 1024)
        streamed = client.post("/v1/tags", content=chunks(), headers={"content-type": "multipart/form-data; boundary=b"})
        assert streamed.status_code == 413 and "request over" in streamed.json()["error"]
        assert client.post("/v1/tags", files=[_photo("cat.jpg")]).status_code == 200


def test_the_service_has_its_own_pixel_budget(tagger):
    big = io.BytesIO()
    Image.new("1", (4000, 3000)).save(big, format="PNG")  # 12 MP
    with TestClient(create_app(tagger, ServeSettings(max_pixels=10_000_000))) as client:
        response = client.post("/v1/tags", files=[("photos", ("p.png", big.getvalue(), "image/png")), _photo("cat.jpg")])
        bomb, cat = response.json()
        assert "image too large (4000x3000" in bomb["error"] and "10,000,000" in bomb["error"] and cat["tags"]


@pytest.mark.parametrize("method, path, status", [("get", "/nowhere", 404), ("delete", "/v1/tags", 405),
                                                  ("post", "/v1/tags", 400)])
def test_every_error_is_json_with_an_error_field(client, method, path, status):
    kwargs = {"content": b"--b\r\nbroken", "headers": {"content-type": "multipart/form-data; boundary=b"}} \
        if method == "post" else {}
    response = getattr(client, method)(path, **kwargs)
    assert response.status_code in (status, 422) and set(response.json()) == {"error"}, response.text


def test_decode_errors_and_threshold_speak_the_apis_language(client):
    response = client.post("/v1/tags", files=[("photos", ("x.jpg", b"not an image", "image/jpeg"))])
    assert "BytesIO" not in response.json()["error"]
    response = client.post("/v1/tags", files=[_photo("cat.jpg")], data={"threshold": "2"})
    assert response.json()["error"].startswith("threshold is a confidence") and "--" not in response.json()["error"]


def test_serve_checks_its_options_and_address_before_announcing(cli, monkeypatch):
    import socket

    import uvicorn

    from tests.conftest import assert_one_error

    monkeypatch.setattr(uvicorn, "run", lambda app, **options: pytest.fail("should not start"))
    assert_one_error(cli("serve", "--port", "70000"), "--port must be between 1 and 65535")
    assert_one_error(cli("serve", "--max-upload-mb", "inf"), "--max-upload-mb must be a positive number")
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = cli("serve", "--port", str(port))
        assert result.code == 1 and result.err.count("\n") == 1 and f"cannot listen on 127.0.0.1:{port}" in result.err
        assert "serving" not in result.err


def test_a_large_inline_vocabulary_is_prepared_off_the_batcher_and_never_cached_on_disk(tagger, tmp_path, monkeypatch):
    """While one request embeds a 3,000-tag list, plain requests keep being answered, and nothing of that list
    reaches the disk caches."""
    import threading
    import time

    import tagrank.images.features

    monkeypatch.setattr(tagrank.images.features, "DEFAULT_CACHE_DIR", tmp_path)
    words = [f"thing number {i}" for i in range(3000)]
    with TestClient(create_app(tagger)) as client:
        big: dict = {}
        worker = threading.Thread(target=lambda: big.update(r=client.post(
            "/v1/tags", files=[_photo("cat.jpg")], data={"vocab": ", ".join(words), "top": "2"})))
        worker.start()
        plain = []
        while worker.is_alive() and len(plain) < 3:
            started = time.perf_counter()
            assert client.post("/v1/tags", files=[_photo("coffee.jpg")], data={"top": "1"}).status_code == 200
            plain.append(time.perf_counter() - started)
        worker.join()
    assert big["r"].status_code == 200 and len(big["r"].json()[0]["tags"]) == 2
    assert plain  # answered while the large list was being embedded
    assert not [p for p in tmp_path.rglob("*.safetensors")]  # no cache entry for an inline list
