"""The served editor: it listens on 127.0.0.1 only and serves no file outside its own temporary folder."""
import os
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest

psutil = pytest.importorskip("psutil")


@pytest.fixture(scope="module")
def served():
    """(app, workdir) of an editor launched in this process with the defaults, on a free port."""
    from neuralassets.editor.app import launch

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADIO_TEMP_DIR", "unset")  # launch() points it at its own folder; restored afterwards
        app = launch(port=port, block=False)
        workdir = Path(os.environ["GRADIO_TEMP_DIR"]).parent
        try:
            yield app, workdir
        finally:
            app.close()


def status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_editor_listens_on_loopback_only(served):
    app, _ = served
    port = int(app.local_url.rstrip("/").rsplit(":", 1)[1])
    listening = [c.laddr.ip for c in psutil.Process().net_connections(kind="tcp")
                 if c.status == psutil.CONN_LISTEN and c.laddr.port == port]
    assert app.server_name == "127.0.0.1" and listening == ["127.0.0.1"]


def test_editor_serves_only_its_temporary_folder(served, tmp_path):
    app, workdir = served
    route = app.local_url + "gradio_api/file="
    served_dir = workdir / "gradio"
    served_dir.mkdir(exist_ok=True)
    (served_dir / "inside.txt").write_text("ok")
    assert status_of(route + str(served_dir / "inside.txt")) == 200  # the control: its own files are served
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    repo_file = Path(__file__).resolve().parents[1] / "README.md"  # the server's working directory
    for path in (outside, repo_file, "/etc/passwd", served_dir / ".." / ".." / "etc" / "passwd", workdir / "sessions",
                 "../../../etc/passwd"):
        assert status_of(route + str(path)) in (403, 404), path


def test_an_unexpected_failure_is_a_status_line_without_server_paths(served, monkeypatch, caplog):
    from gradio_client import Client

    from neuralassets import edits

    app, workdir = served

    def broken(scene, *args):
        raise RuntimeError(f"cannot write {workdir}/sessions/x/render.png")

    monkeypatch.setattr(edits, "remove", broken)  # a bug below the callbacks, which catch only the library's errors
    client = Client(app.local_url, verbose=False)
    client.predict("sample 1 (seed 2000000)", api_name="/load_sample")
    client.predict(1, api_name="/select")
    with caplog.at_level("ERROR"):
        message = client.predict(api_name="/remove")[0]
    assert message == "Removing failed with an internal error; nothing was changed. The server log has the details."
    assert "cannot write" in caplog.text  # the details go to the server's log, not to the page
    assert client.predict(api_name="/undo")[0] == "Nothing to undo."  # the session still works

