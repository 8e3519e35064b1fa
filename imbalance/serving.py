"""A checkpoint behind HTTP (FastAPI): ``/health``, ``/model/info``, ``/predict`` and ``/predict/batch``.

The checkpoint is loaded once (``Predictor``: ``torch.load(..., weights_only=True)``) and every
request is answered the way ``predict.py`` would: the same preprocessing, calibration and
thresholds, so the probabilities are identical for the same rows.

Requests are validated against the checkpoint's feature schema with pydantic models built from
it: every feature the model was trained on is a required field that may be ``null`` (missing,
filled as in training); a numeric field takes a number or a numeric string, and ``NaN`` /
``Infinity`` count as missing as in ``predict.py``; a yes/no field takes true/false, 0/1 or a
yes/no word; a categorical field takes any value, and levels never seen in training become the
``other`` level. A value of the wrong type or that cannot be read (``"abc"`` for a number,
``"maybe"`` for yes/no) is a 422 whose body names the field. Unknown fields are ignored; the id
column, when the model has one, is echoed back.

Inference runs under a lock: concurrent requests are safe and each is answered whole (PyTorch
modules are not documented as safe for concurrent forward passes, and these forward passes take
milliseconds); ``--workers N`` runs N processes for throughput.
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations, which name
# models built at run time (the record schema comes from the checkpoint).
import hashlib
import io
import json
import math
import os
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Optional, Union

import numpy as np
import pandas as pd

from .checkpoint import resolve_checkpoint_path
from .errors import UserError
from .inference import Predictor
from .data import FALSE_TOKENS, TRUE_TOKENS, read_csv_text

__all__ = ["create_app", "app_from_environment", "model_version", "MAX_BATCH_ROWS", "CHECKPOINT_ENV", "MAX_ROWS_ENV"]

MAX_BATCH_ROWS = 10_000
CHECKPOINT_ENV, MAX_ROWS_ENV = "IMBALANCE_SERVE_CHECKPOINT", "IMBALANCE_SERVE_MAX_BATCH_ROWS"


def model_version(path: Path) -> str:
    """The first 12 hex digits of the checkpoint file's SHA-256: changes whenever the model does."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]


def _binary_value(value: Any) -> Any:
    """A yes/no field's value, checked the way the preprocessor reads it."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        if isinstance(value, float) and math.isnan(value):
            return None
        if value in (0, 1):
            return value
        raise ValueError(f"a yes/no value must be 0 or 1, got {value!r}")
    if str(value).strip().lower() in TRUE_TOKENS | FALSE_TOKENS:
        return value
    raise ValueError(f"a yes/no value must be true/false, 0/1 or yes/no, got {value!r}")


def _schema(predictor: Predictor) -> list[dict[str, Any]]:
    """Each feature: name, kind, and the known levels of a categorical column."""
    out = []
    for spec in predictor.preprocessor.columns_ or []:
        entry = {"name": spec["name"], "kind": spec["kind"]}
        if spec["kind"] == "categorical":
            entry["levels"] = [str(level) for level in spec["levels"]]
        out.append(entry)
    return out


def _record_model(predictor: Predictor) -> Any:
    """The pydantic model of one record, built from the checkpoint's feature schema."""
    from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model

    class Record(BaseModel):
        model_config = ConfigDict(extra="ignore", populate_by_name=False)

    fields: dict[str, Any] = {}
    for i, spec in enumerate(_schema(predictor)):
        if spec["kind"] == "numeric":
            kind: Any = Optional[float]
            about = "a number; null, NaN or Infinity for missing"
        elif spec["kind"] == "binary":
            kind = Annotated[Optional[Union[bool, float, str]], AfterValidator(_binary_value)]
            about = "true/false, 0/1 or yes/no; null for missing"
        else:
            kind = Optional[Union[str, float, bool]]
            shown = ", ".join(spec["levels"][:20]) + (" ..." if len(spec["levels"]) > 20 else "")
            about = f"a category (known: {shown}); unseen values count as 'other'; null for missing"
        fields[f"f{i}"] = (kind, Field(..., alias=spec["name"], description=about))
    if predictor.id_col and predictor.id_col not in {s["name"] for s in _schema(predictor)}:
        fields["record_id"] = (Optional[Union[str, int, float]], Field(None, alias=predictor.id_col, description="echoed back"))
    return create_model("Record", __base__=Record, **fields)


def _frame(records: list[Any], columns: list[str], id_col: Optional[str]) -> pd.DataFrame:
    rows = [r.model_dump(by_alias=True) for r in records]
    frame = pd.DataFrame(rows, columns=[*columns, *([id_col] if id_col and id_col not in columns else [])])
    return frame.replace([np.inf, -np.inf], np.nan).astype({c: object for c in frame.columns if frame[c].dtype == object})


def create_app(predictor: Predictor, *, checkpoint_path: Path, max_batch_rows: int = MAX_BATCH_ROWS) -> Any:
    """The FastAPI app serving ``predictor`` (loaded from ``checkpoint_path``)."""
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.exceptions import RequestValidationError
    from pydantic import BaseModel, Field, ValidationError, create_model

    version = model_version(checkpoint_path)
    names = predictor.label_names
    columns = predictor.feature_columns
    Record = _record_model(predictor)
    Batch = create_model("Batch", records=(list[Record], Field(..., description=f"at most {max_batch_rows} records")))

    class LabelPrediction(BaseModel):
        probability: float = Field(description="calibrated probability")
        decision: int = Field(description="1 when the probability is at or above the threshold")
        threshold: float

    class Prediction(BaseModel):
        id: Optional[Union[str, int, float]] = None
        labels: dict[str, LabelPrediction]

    class Answer(BaseModel):
        model_version: str
        timestamp: str
        prediction: Prediction

    class BatchAnswer(BaseModel):
        model_version: str
        timestamp: str
        rows: int
        predictions: list[Prediction]

    lock = threading.Lock()
    checkpoint = predictor.checkpoint
    metrics = checkpoint.get("metrics") or {}
    app = FastAPI(title=f"imbalance model: {', '.join(names)}", version=version,
                  description=f"Serves `{checkpoint_path}`: the same preprocessing, calibration and thresholds as predict.py.")

    def answer_rows(frame: pd.DataFrame) -> list[Prediction]:
        try:
            with lock:
                prob = predictor.predict_proba(frame, source="request").to_numpy()
        except UserError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from None
        ids = frame[predictor.id_col].tolist() if predictor.id_col and predictor.id_col in frame.columns else [None] * len(frame)
        out = []
        for i in range(len(frame)):
            labels = {name: LabelPrediction(probability=float(prob[i, j]), decision=int(prob[i, j] >= predictor.thresholds[j]),
                                            threshold=float(predictor.thresholds[j])) for j, name in enumerate(names)}
            out.append(Prediction(id=None if ids[i] is None or (isinstance(ids[i], float) and math.isnan(ids[i])) else ids[i],
                                  labels=labels))
        return out

    def now() -> str:
        return datetime.now(timezone.utc).isoformat(timespec="milliseconds")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Any:
        """422 naming each field at fault, with ``body`` in front of the location as FastAPI's own;
        a record is not echoed back (it may hold NaN, which JSON cannot carry)."""
        from fastapi.responses import JSONResponse

        errors = []
        for error in exc.errors():
            entry = {k: v for k, v in error.items() if k in ("type", "loc", "msg")}
            loc = list(entry.get("loc", ()))
            entry["loc"] = loc if loc[:1] == ["body"] else ["body", *loc]
            value = error.get("input")
            if isinstance(value, (str, bool, int)) or (isinstance(value, float) and math.isfinite(value)):
                entry["input"] = value
            errors.append(entry)
        return JSONResponse(status_code=422, content={"detail": errors})

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "model_loaded": True, "model_version": version}

    @app.get("/model/info")
    def info() -> dict[str, Any]:
        return {
            "model_version": version, "checkpoint": str(checkpoint_path), "labels": names,
            "thresholds": dict(zip(names, map(float, predictor.thresholds))),
            "threshold_objective": checkpoint.get("threshold_source"),
            "calibration": predictor.calibration.method,
            "features": _schema(predictor), "id_column": predictor.id_col,
            "model": {"name": checkpoint.get("model_name"), "members": len(predictor.models),
                      "settings": checkpoint.get("model_settings")},
            "test_metrics": metrics, "max_batch_rows": max_batch_rows, "torch_version": checkpoint.get("torch_version"),
        }

    @app.post("/predict", response_model=Answer)
    def predict(record: Record) -> Answer:  # type: ignore[valid-type]
        (prediction,) = answer_rows(_frame([record], columns, predictor.id_col))
        return Answer(model_version=version, timestamp=now(), prediction=prediction)

    csv_or_json = {"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/Batch"}},
        "text/csv": {"schema": {"type": "string"}, "example": ",".join(columns) + "\n"}}}}

    @app.post("/predict/batch", response_model=BatchAnswer, openapi_extra=csv_or_json)
    async def predict_batch(request: Request) -> BatchAnswer:
        body = await request.body()
        if request.headers.get("content-type", "").split(";")[0].strip() == "text/csv":
            try:
                frame = read_csv_text(io.BytesIO(body))  # parsed as predict.py parses a file
            except (ValueError, pd.errors.ParserError) as exc:
                raise HTTPException(status_code=422, detail=f"the CSV body cannot be read ({str(exc).splitlines()[0][:200]})") from None
        else:
            try:
                parsed = json.loads(body)  # Python's reader: NaN and Infinity are read as predict.py reads them
            except ValueError as exc:
                raise HTTPException(status_code=422, detail=f"the body is not JSON ({exc})") from None
            try:  # {"records": [...]} or the bare list
                batch = Batch.model_validate({"records": parsed} if isinstance(parsed, list) else parsed)
            except ValidationError as exc:
                raise RequestValidationError(exc.errors(include_url=False)) from None
            if len(batch.records) > max_batch_rows:
                raise HTTPException(status_code=413, detail=f"{len(batch.records)} records; at most {max_batch_rows} per batch")
            frame = _frame(batch.records, columns, predictor.id_col)
        if len(frame) > max_batch_rows:
            raise HTTPException(status_code=413, detail=f"{len(frame)} rows; at most {max_batch_rows} per batch")
        if not len(frame):
            raise HTTPException(status_code=422, detail="the batch holds no rows")
        predictions = answer_rows(frame)
        return BatchAnswer(model_version=version, timestamp=now(), rows=len(predictions), predictions=predictions)

    app.openapi_schema = None
    # The Batch model is used through openapi_extra only: add it to the schema's components.
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = original()
            schema.setdefault("components", {}).setdefault("schemas", {})["Batch"] = Batch.model_json_schema(
                ref_template="#/components/schemas/{model}")
            for name, sub in Batch.model_json_schema(ref_template="#/components/schemas/{model}").get("$defs", {}).items():
                schema["components"]["schemas"].setdefault(name, sub)
            schema["components"]["schemas"]["Batch"].pop("$defs", None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def app_from_environment() -> Any:
    """The app for uvicorn's worker processes (``--workers N``): the checkpoint named in the environment."""
    path = resolve_checkpoint_path(os.environ[CHECKPOINT_ENV])
    return create_app(Predictor.load(path), checkpoint_path=path,
                      max_batch_rows=int(os.environ.get(MAX_ROWS_ENV, MAX_BATCH_ROWS)))
