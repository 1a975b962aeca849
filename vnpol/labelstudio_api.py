"""A small client for a running Label Studio's REST API, with the standard library only (urllib).

The server and the key come from the environment, never from a file in the repository:

* ``LABEL_STUDIO_URL`` — e.g. ``http://localhost:8080``
* ``LABEL_STUDIO_API_KEY`` — from Label Studio's *Account & Settings*: a personal access
  token (a JWT, exchanged at ``/api/token/refresh`` for a short-lived access token sent as
  ``Bearer``) or a legacy token (sent as ``Token``).

Only what the annotation loop needs: create a project with a labeling config,
import tasks (with predictions), list tasks, add an annotation, export; and
:func:`local_server` to run a throw-away Label Studio for tests and screenshots.
"""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

URL_ENV, KEY_ENV = "LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY"


class LabelStudioError(RuntimeError):
    """The server could not be reached or refused a request; the message says what to do."""


def _is_jwt(token: str) -> bool:
    return token.startswith("eyJ") and token.count(".") == 2


@dataclass
class Client:
    url: str
    api_key: str = field(repr=False)
    timeout: float = 60.0
    _access: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "Client":
        env = os.environ if environ is None else environ
        url, key = env.get(URL_ENV, "").strip(), env.get(KEY_ENV, "").strip()
        missing = [name for name, value in ((URL_ENV, url), (KEY_ENV, key)) if not value]
        if missing:
            raise LabelStudioError(f"set {' and '.join(missing)} in the environment: {URL_ENV} is the server "
                                   f"(e.g. http://localhost:8080), {KEY_ENV} the token from Label Studio's Account & Settings "
                                   "(personal access token or legacy token)")
        return cls(url.rstrip("/"), key)

    # ------------------------------------------------------------------ HTTP

    def _authorization(self) -> str:
        if not _is_jwt(self.api_key):
            return f"Token {self.api_key}"
        if self._access is None:
            answer = self._send("POST", "/api/token/refresh", {"refresh": self.api_key}, auth=None)
            self._access = answer["access"]
        return f"Bearer {self._access}"

    def request(self, method: str, path: str, body: Any = None, **query: Any) -> Any:
        """One API call; the decoded JSON answer."""
        try:
            return self._send(method, path, body, auth=self._authorization(), **query)
        except LabelStudioError as exc:
            if self._access is not None and "HTTP 401" in str(exc):  # the access token expired: refresh once
                self._access = None
                return self._send(method, path, body, auth=self._authorization(), **query)
            raise

    def _send(self, method: str, path: str, body: Any, *, auth: str | None, **query: Any) -> Any:
        url = self.url + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
        headers = {"Accept": "application/json"}
        if auth:
            headers["Authorization"] = auth
        data = None
        if body is not None:
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
            headers["Content-Type"] = "application/json; charset=utf-8"
        req = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")[:500]
            hint = f"; check {KEY_ENV} (is this token type enabled in the organization's Access Token Settings?)" if exc.code == 401 else ""
            raise LabelStudioError(f"Label Studio answered HTTP {exc.code} to {method} {path}: {detail}{hint}") from None
        except urllib.error.URLError as exc:
            raise LabelStudioError(f"cannot reach Label Studio at {self.url} ({exc.reason}); is it running? ({URL_ENV})") from None
        return json.loads(raw.decode("utf-8")) if raw.strip() else None

    # ------------------------------------------------------------------ the annotation loop

    def create_project(self, title: str, label_config: str, **settings: Any) -> dict:
        return self.request("POST", "/api/projects", {"title": title, "label_config": label_config, **settings})

    def project(self, project_id: int) -> dict:
        return self.request("GET", f"/api/projects/{project_id}")

    def update_project(self, project_id: int, **settings: Any) -> dict:
        return self.request("PATCH", f"/api/projects/{project_id}", settings)

    def import_tasks(self, project_id: int, tasks: list[dict]) -> dict:
        """Import tasks (with their ``predictions``); Label Studio answers with counts."""
        return self.request("POST", f"/api/projects/{project_id}/import", tasks)

    def tasks(self, project_id: int, page_size: int = 100) -> list[dict]:
        """Every task of a project, page by page."""
        out: list[dict] = []
        page = 1
        while True:
            answer = self.request("GET", "/api/tasks", project=project_id, page=page, page_size=page_size, fields="all")
            batch = answer.get("tasks", []) if isinstance(answer, dict) else answer
            out.extend(batch)
            total = answer.get("total", len(out)) if isinstance(answer, dict) else len(out)
            if not batch or len(out) >= total:
                return out
            page += 1

    def create_annotation(self, task_id: int, result: list[dict], **fields: Any) -> dict:
        return self.request("POST", f"/api/tasks/{task_id}/annotations", {"result": result, **fields})

    def export(self, project_id: int) -> list[dict]:
        """Every task of the project with its annotations, as Label Studio's JSON export.

        The export lists predictions by id only; they are filled in from the task list,
        so that ``vnpol convert --predictions`` can use them for tasks nobody annotated.
        """
        tasks = self.request("GET", f"/api/projects/{project_id}/export", exportType="JSON", download_all_tasks="true")
        if any(t.get("predictions") for t in tasks):
            full = {t["id"]: t.get("predictions") or [] for t in self.tasks(project_id)}
            for t in tasks:
                t["predictions"] = full.get(t["id"], t.get("predictions"))
        return tasks

    def push(self, tasks: list[dict], label_config: str, *, title: str = "vnpol", project_id: int | None = None) -> dict:
        """Create a project with ``label_config`` (or use ``project_id``) and import ``tasks``; the project."""
        project = self.project(project_id) if project_id else self.create_project(title, label_config)
        versions = sorted({p.get("model_version") for t in tasks for p in t.get("predictions", []) if p.get("model_version")})
        self.import_tasks(project["id"], tasks)
        if versions:  # pre-annotate with this model's predictions
            project = self.update_project(project["id"], model_version=versions[-1], show_collab_predictions=True)
        return project


# --------------------------------------------------------------------------- a local server (tests, screenshots, trying it out)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def local_server(executable: str | Path, home: str | Path, *, user: str, password: str, token: str,
                 port: int | None = None, timeout: float = 240.0) -> Iterator[Client]:
    """Start ``label-studio`` on 127.0.0.1 (SQLite in ``home``, a user with a legacy token); a client for it; stop it after.

    Raises :class:`LabelStudioError` with the end of the server's log when it exits or does not answer in time.
    """
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log = home / "server.log"
    env = {**os.environ, "LABEL_STUDIO_BASE_DATA_DIR": str(home / "data"), "DJANGO_DB": "sqlite", "LOG_LEVEL": "WARNING"}
    cmd = [str(executable), "start", "--data-dir", str(home / "data"), "--port", str(port), "--internal-host", "127.0.0.1",
           "--no-browser", "--username", user, "--password", password, "--user-token", token, "--enable-legacy-api-token"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=home, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_health(url, proc, log, timeout)
        yield Client(url, token)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_for_health(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LabelStudioError(f"label-studio exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise LabelStudioError(f"label-studio did not answer {url}/health within {timeout:.0f} s:\n{log.read_text(errors='replace')[-3000:]}")
