"""A small local stand-in for the Hugging Face Hub HTTP API, for tests of the `hf` backend.

It implements exactly the endpoints that deeprl's calls through `huggingface_hub` (2.x) use, in memory:

  POST /api/repos/create                               create_repo (409 when it exists)
  POST /api/validate-yaml                              create_commit checks README.md front matter
  POST /api/models/NS/NAME/preupload/REV               upload modes (always "regular": content travels inline)
  POST /api/models/NS/NAME/commit/REV                  NDJSON commit (header, file, deletedFile)
  GET  /api/models/NS/NAME[/revision/REV]              repo_info / model_info (sha, lastModified, siblings)
  GET  /api/models/NS/NAME/tree/REV[/PATH]             list_repo_tree (recursive)
  GET  /api/models/NS/NAME/commits/REV                 list_repo_commits
  GET  /api/models?filter=TAG&author=A&search=S        list_models (tags all present, namespace, id substring)
  HEAD|GET /NS/NAME/resolve/REV/PATH                   file metadata and download
  GET  /api/agent-harnesses                            the client's user-agent registry (an empty one)

Writes need an `Authorization: Bearer ...` header (and, when the stand-in was given one, that exact token).
Run `python tests/hf_standin.py` to serve on a port of your own for manual trials.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import yaml


def git_blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _card_tags(files: dict) -> list[str]:
    text = files.get("README.md", b"").decode(errors="replace")
    if not text.startswith("---"):
        return []
    try:
        meta = yaml.safe_load(text.split("---", 2)[1]) or {}
    except yaml.YAMLError:
        return []
    tags = list(meta.get("tags") or []) if isinstance(meta, dict) else []
    if isinstance(meta, dict) and meta.get("library_name"):
        tags.append(meta["library_name"])
    return [str(t) for t in tags]


class Store:
    def __init__(self):
        self.lock = threading.Lock()
        self.repos: dict[str, dict] = {}  # repo_id -> {"created": ts, "commits": [newest last]}
        self._ids = itertools.count(1)
        self.requests: list[tuple[str, str]] = []  # (method, path) log for tests

    def new_oid(self, repo_id: str) -> str:
        return hashlib.sha1(f"{repo_id}:{next(self._ids)}:{time.time_ns()}".encode()).hexdigest()

    def commit_at(self, repo: dict, rev: str | None) -> dict | None:
        if not repo["commits"]:
            return None
        if rev in (None, "", "main", "HEAD"):
            return repo["commits"][-1]
        for c in repo["commits"]:
            if c["oid"] == rev or (len(rev) >= 7 and c["oid"].startswith(rev)):
                return c
        return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    store: Store
    token: str | None = None

    def log_message(self, *args):  # quiet in tests
        pass

    # -- plumbing ---------------------------------------------------------------------------------------------

    def _send(
        self,
        status: int,
        body: bytes = b"",
        ctype: str = "application/json",
        headers: dict | None = None,
        head: bool = False,
    ):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _json(self, status: int, obj, headers: dict | None = None, head: bool = False):
        self._send(status, json.dumps(obj).encode(), headers=headers, head=head)

    def _error(self, status: int, code: str | None, message: str, head: bool = False):
        headers = {"X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        self._json(status, {"error": message}, headers=headers, head=head)

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _authorized(self) -> bool:
        auth = self.headers.get("Authorization") or ""
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            self._error(401, None, "Invalid credentials in Authorization header")
            return False
        if self.token is not None and auth[7:].strip() != self.token:
            self._error(401, None, "Invalid username or password.")
            return False
        return True

    def _route(self):
        url = urlsplit(self.path)
        # keep %2F inside a revision: split on raw slashes first, then unquote each part
        parts = [unquote(p) for p in url.path.split("/") if p]
        return parts, parse_qs(url.query)

    def _repo(self, ns: str, name: str, head: bool = False):
        repo = self.store.repos.get(f"{ns}/{name}")
        if repo is None:
            self._error(404, "RepoNotFound", f"Repository {ns}/{name} not found", head=head)
        return repo

    def _commit(self, repo_id: str, repo: dict, rev: str | None, head: bool = False):
        commit = self.store.commit_at(repo, rev)
        if commit is None:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}", head=head)
        return commit

    def _info(self, repo_id: str, repo: dict, commit: dict | None) -> dict:
        files = commit["files"] if commit else {}
        return {
            "_id": repo_id,
            "id": repo_id,
            "modelId": repo_id,
            "author": repo_id.split("/")[0],
            "sha": commit["oid"] if commit else None,
            "private": False,
            "disabled": False,
            "gated": False,
            "downloads": 0,
            "likes": 0,
            "library_name": "deeprl",
            "tags": _card_tags(files),
            "createdAt": _iso(repo["created"]),
            "lastModified": _iso(commit["ts"] if commit else repo["created"]),
            "siblings": [{"rfilename": p} for p in sorted(files)],
        }

    # -- verbs ------------------------------------------------------------------------------------------------

    def do_HEAD(self):
        self._get(head=True)

    def do_GET(self):
        self._get(head=False)

    def _get(self, head: bool):
        parts, query = self._route()
        self.store.requests.append(("HEAD" if head else "GET", self.path))
        with self.store.lock:
            if parts == ["api", "agent-harnesses"]:  # huggingface_hub's user-agent registry, fetched once a day
                return self._json(200, {"standardEnvVars": [], "harnesses": {}}, head=head)
            if parts[:2] == ["api", "models"] and len(parts) == 2:
                return self._list_models(query, head)
            if parts[:2] == ["api", "models"] and len(parts) >= 4:
                ns, name, rest = parts[2], parts[3], parts[4:]
                repo = self._repo(ns, name, head)
                if repo is None:
                    return
                repo_id = f"{ns}/{name}"
                if not rest or rest[0] == "revision":
                    commit = self._commit(repo_id, repo, rest[1] if len(rest) > 1 else None, head)
                    if commit is not None or not rest:
                        return self._json(200, self._info(repo_id, repo, commit), head=head)
                    return
                if rest[0] == "tree" and len(rest) >= 2:
                    commit = self._commit(repo_id, repo, rest[1], head)
                    if commit is not None:
                        return self._tree(commit, "/".join(rest[2:]), query, head)
                    return
                if rest[0] == "commits":
                    commit = self._commit(repo_id, repo, rest[1] if len(rest) > 1 else None, head)
                    if commit is not None:
                        idx = repo["commits"].index(commit)
                        return self._json(
                            200,
                            [
                                {
                                    "id": c["oid"],
                                    "title": c["title"],
                                    "message": c["message"],
                                    "date": _iso(c["ts"]),
                                    "authors": [{"user": c["author"]}],
                                }
                                for c in reversed(repo["commits"][: idx + 1])
                            ],
                            head=head,
                        )
                    return
            if len(parts) >= 5 and parts[2] == "resolve":
                ns, name, rev, path = parts[0], parts[1], parts[3], "/".join(parts[4:])
                repo = self._repo(ns, name, head)
                if repo is None:
                    return
                commit = self._commit(f"{ns}/{name}", repo, rev, head)
                if commit is None:
                    return
                data = commit["files"].get(path)
                if data is None:
                    return self._error(404, "EntryNotFound", f"{path} does not exist at {rev}", head=head)
                return self._send(
                    200,
                    data,
                    ctype="application/octet-stream",
                    head=head,
                    headers={"X-Repo-Commit": commit["oid"], "ETag": f'"{git_blob_sha(data)}"'},
                )
        self._error(404, None, f"stand-in: no route for {self.command} {self.path}", head=head)

    def _list_models(self, query: dict, head: bool):
        wanted = query.get("filter", [])
        author = (query.get("author") or [None])[0]
        search = (query.get("search") or [""])[0].lower()
        out = []
        for repo_id, repo in sorted(self.store.repos.items()):
            commit = self.store.commit_at(repo, None)
            info = self._info(repo_id, repo, commit)
            if (
                all(t in info["tags"] for t in wanted)
                and (author is None or repo_id.startswith(author + "/"))
                and search in repo_id.lower()
            ):
                info.pop("siblings")
                out.append(info)
        limit = (query.get("limit") or [None])[0]
        self._json(200, out[: int(limit)] if limit else out, head=head)

    def _tree(self, commit: dict, prefix: str, query: dict, head: bool):
        recursive = (query.get("recursive") or ["false"])[0].lower() in ("1", "true")
        prefix = prefix.strip("/")
        entries, dirs = [], set()
        for path, data in sorted(commit["files"].items()):
            if prefix and not path.startswith(prefix + "/"):
                continue
            rel = path[len(prefix) + 1 :] if prefix else path
            segs = rel.split("/")
            for i in range(1, len(segs)):
                d = "/".join(segs[:i])
                if (recursive or i == 1) and d not in dirs:
                    dirs.add(d)
                    full = f"{prefix}/{d}" if prefix else d
                    entries.append(
                        {"type": "directory", "oid": hashlib.sha1(full.encode()).hexdigest(), "size": 0, "path": full}
                    )
            if recursive or len(segs) == 1:
                entries.append({"type": "file", "oid": git_blob_sha(data), "size": len(data), "path": path})
        if prefix and not entries:
            return self._error(404, "EntryNotFound", f"{prefix} does not exist", head=head)
        self._json(200, entries, head=head)

    def do_POST(self):
        parts, query = self._route()
        self.store.requests.append(("POST", self.path))
        body = self._body()
        if parts == ["api", "validate-yaml"]:
            try:
                content = json.loads(body)["content"]
                if content.startswith("---"):
                    yaml.safe_load(content.split("---", 2)[1])
            except (ValueError, KeyError, IndexError, yaml.YAMLError) as exc:
                return self._json(400, {"error": f"Invalid YAML: {exc}"})
            return self._json(200, {"errors": [], "warnings": []})
        if not self._authorized():
            return
        with self.store.lock:
            if parts == ["api", "repos", "create"]:
                payload = json.loads(body)
                repo_id = f"{payload.get('organization') or 'user'}/{payload['name']}"
                if payload.get("type", "model") not in ("model", None):
                    return self._error(400, None, "stand-in: only model repos")
                if repo_id in self.store.repos:
                    return self._json(409, {"error": "You already created this model repo", "url": f"/{repo_id}"})
                self.store.repos[repo_id] = {"created": time.time(), "commits": []}
                return self._json(200, {"url": f"http://{self.headers.get('Host')}/{repo_id}", "name": repo_id})
            if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] in ("preupload", "commit"):
                ns, name, action, rev = parts[2], parts[3], parts[4], "/".join(parts[5:])
                repo = self._repo(ns, name)
                if repo is None:
                    return
                repo_id = f"{ns}/{name}"
                if rev != "main":
                    return self._error(404, "RevisionNotFound", f"stand-in: only the main branch ({rev})")
                head = self.store.commit_at(repo, None)
                files = head["files"] if head else {}
                if action == "preupload":
                    req = json.loads(body)
                    return self._json(
                        200,
                        {
                            "files": [
                                {
                                    "path": f["path"],
                                    "uploadMode": "regular",
                                    "shouldIgnore": False,
                                    "oid": git_blob_sha(files[f["path"]]) if f["path"] in files else None,
                                }
                                for f in req["files"]
                            ]
                        },
                    )
                return self._commit_ndjson(repo_id, repo, head, body)
        self._error(404, None, f"stand-in: no route for POST {self.path}")

    def _commit_ndjson(self, repo_id: str, repo: dict, head: dict | None, body: bytes):
        files = dict(head["files"]) if head else {}
        header = None
        for line in body.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                header = value
            elif key == "file":
                if value.get("encoding", "base64") != "base64":
                    return self._error(400, None, "stand-in: file content must be base64")
                files[value["path"]] = base64.b64decode(value["content"])
            elif key == "deletedFile":
                files.pop(value["path"], None)
            elif key == "deletedFolder":
                files = {p: d for p, d in files.items() if not p.startswith(value["path"].rstrip("/") + "/")}
            else:
                return self._error(400, None, f"stand-in: unsupported commit operation '{key}'")
        if header is None:
            return self._error(400, None, "commit without a header line")
        parent = header.get("parentCommit")
        if parent and head and parent != head["oid"]:
            return self._error(412, None, "A commit has happened since. Please refresh and try again.")
        oid = self.store.new_oid(repo_id)
        title = header.get("summary") or "Upload folder"
        message = title + ("\n\n" + header["description"] if header.get("description") else "")
        repo["commits"].append(
            {"oid": oid, "title": title, "message": message, "ts": time.time(), "author": "standin", "files": files}
        )
        host = self.headers.get("Host")
        self._json(
            200,
            {
                "commitUrl": f"http://{host}/{repo_id}/commit/{oid}",
                "commitOid": oid,
                "pullRequestUrl": None,
                "success": True,
            },
        )


def point_at(monkeypatch, cache: Path, url: str, token: str = "hf_standin_token") -> None:
    """Point huggingface_hub (and deeprl's hf backend) at a stand-in at `url`, with its cache in `cache`."""
    import huggingface_hub.constants as hc

    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache / "hf-cache"))
    monkeypatch.setenv("HF_TOKEN", token)
    # huggingface_hub read HF_ENDPOINT at import: make its constants what they would be had HF_ENDPOINT been set
    # before (as a user does), so that no call, not even its background ones, leaves this machine
    monkeypatch.setattr(hc, "ENDPOINT", url)
    monkeypatch.setattr(hc, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(hc, "HF_TOKEN_PATH", str(cache / "no-token-file"))


class StandIn:
    """`with StandIn() as hub:` serves on 127.0.0.1 at an ephemeral port; `hub.url` is the endpoint."""

    def __init__(self, token: str | None = None, host: str = "127.0.0.1", port: int = 0):
        self.store = Store()
        handler = type("BoundHandler", (Handler,), {"store": self.store, "token": token})
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self.url = f"http://{host}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self, deadline_s: float = 10.0) -> StandIn:
        import urllib.request

        self.thread.start()
        end = time.monotonic() + deadline_s
        while True:  # poll until it answers, never a blind sleep
            try:
                with urllib.request.urlopen(self.url + "/api/models", timeout=1) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                if time.monotonic() > end:
                    raise RuntimeError(f"the HF stand-in did not answer on {self.url} within {deadline_s}s") from None
                time.sleep(0.01)

    def add_repo(self, repo_id: str, files: dict[str, bytes], title: str = "Upload folder") -> str:
        """Commit `files` to `repo_id` (created when new) straight into the store, as a push would: for tests and
        benchmarks that need many repos quickly. Returns the commit id."""
        with self.store.lock:
            repo = self.store.repos.setdefault(repo_id, {"created": time.time(), "commits": []})
            head = self.store.commit_at(repo, None)
            oid = self.store.new_oid(repo_id)
            repo["commits"].append(
                {
                    "oid": oid,
                    "title": title,
                    "message": title,
                    "ts": time.time(),
                    "author": "standin",
                    "files": {**(head["files"] if head else {}), **files},
                }
            )
        return oid

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--token", default=None)
    a = ap.parse_args()
    s = StandIn(token=a.token, port=a.port).start()
    print(f"HF stand-in on {s.url} (export HF_ENDPOINT={s.url} HF_TOKEN=anything); Ctrl-C to stop", flush=True)
    try:
        s.thread.join()
    except KeyboardInterrupt:
        s.stop()
