"""The JSON API's response models: what /api answers, and what the OpenAPI schema at /openapi.json describes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class Row(BaseModel):
    rank: int
    repo_id: str
    user: str
    algo: str | None = None
    result: float
    mean_reward: float
    std_reward: float
    claimed_result: float | None
    flagged: bool
    pushed_at: str | None
    revision: str
    flag_reason: str | None = None


class Board(BaseModel):
    env: str
    description: str | None = None
    minimum: float | None = None
    rows: list[Row]
    total: int
    page: int
    per_page: int
    pages: int


class EnvSummary(BaseModel):
    env: str
    models: int
    users: int
    best_result: float | None
    last_push: str | None
    unranked: int


class Revision(BaseModel):
    revision: str
    message: str | None
    pushed_at: str | None
    received_at: str | None = None
    env: str | None
    algo: str | None
    status: str
    error: str | None
    mean_reward: float | None
    std_reward: float | None
    result: float | None
    n_eval_episodes: int | None
    claimed_env: str | None
    claimed_mean: float | None
    claimed_std: float | None
    claimed_result: float | None
    flagged: bool
    flag_reason: str | None
    evaluated_at: str | None
    latest: bool


class FileEntry(BaseModel):
    path: str
    size: int
    url: str


class ModelOut(BaseModel):
    repo_id: str
    user: str
    hub: str
    active: bool
    latest_revision: str | None
    pushed_at: str | None
    env: str | None
    rank: int | None
    revision: str | None
    revisions: list[Revision]
    files: list[FileEntry]
    video_url: str | None
    card_meta: dict


class AssignmentOut(BaseModel):
    key: str
    unit: str
    title: str
    envs: list[str]
    minimum: float | None
    runnable: bool
    passed: bool
    status: str
    best_model: str | None
    best_result: float | None
    best_rank: int | None = None
    missing: str | None


class ProgressOut(BaseModel):
    user: str
    hub: str
    passed: int
    total: int
    percent: float
    level: str | None
    needed_for_completion: int
    models: int
    assignments: list[AssignmentOut]
    missing: str | None


class CertResult(BaseModel):
    unit: str
    title: str
    env: str | None = None
    repo_id: str | None = None
    revision: str | None = None
    result: float | None = None
    minimum: float | None = None


class CertificateOut(BaseModel):
    id: str
    user: str
    first_name: str
    last_name: str
    level: str
    issued_at: str | None
    hub: str
    results: list[CertResult]


class RefreshOut(BaseModel):
    status: str
    running: bool
    started_at: str | None
    finished_at: str | None
    last_report: dict | None
    last_error: str | None


class Message(BaseModel):
    detail: str


# typed as FastAPI's `responses` argument is
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Message, "description": "Not found"}}
