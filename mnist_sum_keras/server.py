"""A local stand-in for TF Serving's REST API over the released SavedModel, plus the drawing page.

`make_server(...)` answers the REST API TF Serving answers for this model
(model status, metadata, predict in row and column formats, `{"b64": ...}`
bytes, `{"error": ...}` with 400 or 404), so clients, `curl` lines and the
page work unchanged against either. It is a local tool for trying the model,
not a production server: TF Serving is the production path (`docs/serving.md`).
With `tf_serving=URL` it forwards the API to a real TF Serving instead and only
serves the page, so the page and the API share one origin.

Built on the standard library's `ThreadingHTTPServer`: one thread per
request, no dependency to install, and enough for one person trying a model.
"""

import base64
import json
import os
import re
import urllib.error
import urllib.request
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import types_pb2

from mnist_sum_keras import contract
from mnist_sum_keras.config import MODEL_NAME
from mnist_sum_keras.export import latest_version

WEB_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "web")
# The page's files: nothing else on disk is ever served.
WEB_FILES = {"/": ("index.html", "text/html; charset=utf-8"),
             "/app.js": ("app.js", "text/javascript; charset=utf-8"),
             "/style.css": ("style.css", "text/css; charset=utf-8")}
MAX_REQUEST_BYTES = 8 * 1024 * 1024
# An oversized body is read and discarded up to this many bytes before the 413
# is sent, so that the client, still sending, is not cut off before it can read
# the answer (a socket closed with unread data resets the connection); beyond
# it the connection is closed after the 413.
MAX_DISCARD_BYTES = 64 * 1024 * 1024
_API = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+))?"
                  r"(?P<verb>/metadata|:predict)?$")
_INT_RANGES = {tf.uint8: (0, 255), tf.int32: (-2**31, 2**31 - 1),
               tf.int64: (-2**63, 2**63 - 1)}


class RestError(Exception):
    """A request TF Serving would answer with `status` and `{"error": message}`."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status, self.message = status, message


class Servable:
    """The newest SavedModel version under `model_dir`, as TF Serving's default policy loads.

    Args:
        model_dir: a model base folder (`saved_models/mnist_sum`, holding
            integer version folders) or one version folder.
        name: the model name in URLs.
    """

    def __init__(self, model_dir, name=MODEL_NAME):
        if os.path.isfile(os.path.join(model_dir, "saved_model.pb")):
            path, version = model_dir, os.path.basename(os.path.normpath(model_dir))
        else:
            path = latest_version(model_dir)
            if path is None:
                raise ValueError(f"No SavedModel version folder under {model_dir!r}")
            version = os.path.basename(path)
        self.name, self.version, self.path = name, version, path
        self.signatures = dict(tf.saved_model.load(path).signatures)

    def check(self, name, version):
        """Raises a 404 `RestError` unless (name, version) is this servable."""
        if name != self.name or version not in (None, self.version):
            request = f"Latest({name})" if version is None else f"Specific({name}, {version})"
            raise RestError(HTTPStatus.NOT_FOUND, f"Servable not found for request: {request}")

    def status(self):
        return {"model_version_status": [{
            "version": self.version, "state": "AVAILABLE",
            "status": {"error_code": "OK", "error_message": ""}}]}

    def metadata(self):
        """`GetModelMetadataResponse` as JSON: each signature's inputs and outputs."""
        def info(spec, key):
            dims = [{"size": str(-1 if d is None else d), "name": ""} for d in spec.shape]
            return {"dtype": types_pb2.DataType.Name(spec.dtype.as_datatype_enum),
                    "tensor_shape": {"dim": dims, "unknown_rank": False}, "name": key}

        signature_def = {}
        for key, function in self.signatures.items():
            inputs = function.structured_input_signature[1]
            signature_def[key] = {
                "inputs": {k: info(v, k) for k, v in inputs.items()},
                "outputs": {k: info(v, k) for k, v in function.structured_outputs.items()},
                "method_name": "tensorflow/serving/predict"}
        return {"model_spec": {"name": self.name, "signature_name": "",
                               "version": self.version},
                "metadata": {"signature_def": {"signature_def": signature_def}}}

    def predict(self, body):
        """Answers a predict request body (a parsed JSON object) as TF Serving would."""
        if not isinstance(body, dict):
            raise RestError(HTTPStatus.BAD_REQUEST, "Request body must be a JSON object")
        key = body.get("signature_name") or contract.SIGNATURE_KEY
        if key not in self.signatures:
            raise RestError(HTTPStatus.BAD_REQUEST,
                            f"Serving signature name: \"{key}\" not found in signature def")
        function = self.signatures[key]
        specs = function.structured_input_signature[1]
        rows = "instances" in body
        if rows == ("inputs" in body):
            raise RestError(HTTPStatus.BAD_REQUEST,
                            "Request must have either 'instances' (row format) or "
                            "'inputs' (column format), not both or neither")
        columns = _columns(body["instances"], specs) if rows else body["inputs"]
        if not isinstance(columns, dict) or set(columns) != set(specs):
            raise RestError(HTTPStatus.BAD_REQUEST,
                            f"'inputs' must be an object with the inputs {sorted(specs)}")
        tensors = {name: _tensor(name, columns[name], spec) for name, spec in specs.items()}
        try:
            outputs = {k: _jsonable(v.numpy()) for k, v in function(**tensors).items()}
        except tf.errors.InvalidArgumentError as e:
            raise RestError(HTTPStatus.BAD_REQUEST, contract.error_text(e)) from None
        if rows:
            count = len(next(iter(outputs.values())))
            return {"predictions": [{k: v[i] for k, v in outputs.items()}
                                    for i in range(count)]}
        return {"outputs": outputs}


def _jsonable(array):
    """An output as (nested) lists, a string output's bytes as text, as TF
    Serving's JSON gives them."""
    if array.dtype == object:
        return [_jsonable(item) if isinstance(item, np.ndarray) else item.decode("utf-8")
                for item in array]
    return array.tolist()


def _columns(instances, specs):
    """Row format -> one list per input (TF Serving's rules for named inputs)."""
    if not isinstance(instances, list):
        raise RestError(HTTPStatus.BAD_REQUEST, "'instances' must be a list")
    if not instances:
        raise RestError(HTTPStatus.BAD_REQUEST, "No values in 'instances' array")
    for i, row in enumerate(instances):
        if not isinstance(row, dict) or set(row) != set(specs):
            raise RestError(HTTPStatus.BAD_REQUEST,
                            f"instances[{i}] must be an object with the inputs "
                            f"{sorted(specs)}")
    return {name: [row[name] for row in instances] for name in specs}


def _leaves(value, depth=0):
    """Checks a nested list is rectangular; returns (shape, flat leaves)."""
    if not isinstance(value, list):
        return (), [value]
    parts = [_leaves(v, depth + 1) for v in value]
    shapes = {shape for shape, _ in parts}
    if len(shapes) > 1:
        raise ValueError("a ragged nested list (rows of different lengths)")
    shape = shapes.pop() if shapes else ()
    return (len(value),) + shape, [leaf for _, flat in parts for leaf in flat]


def _tensor(name, value, spec):
    """JSON value -> tensor of the signature's dtype, refusing what does not fit.

    Stricter than TF Serving in one way: an integer that does not fit the dtype
    (a pixel of 256 for uint8) is refused here, where TF Serving casts it.
    """
    try:
        shape, leaves = _leaves(value)
    except ValueError as e:
        raise RestError(HTTPStatus.BAD_REQUEST, f"{name}: {e}") from None
    if spec.dtype == tf.string:
        data = []
        for leaf in leaves:
            if isinstance(leaf, dict) and set(leaf) == {"b64"} and isinstance(leaf["b64"], str):
                try:
                    data.append(base64.b64decode(leaf["b64"], validate=True))
                except ValueError:
                    raise RestError(HTTPStatus.BAD_REQUEST,
                                    f"{name}: 'b64' value is not valid base64") from None
            elif isinstance(leaf, str):
                data.append(leaf.encode())
            else:
                raise RestError(HTTPStatus.BAD_REQUEST,
                                f"{name}: JSON value {leaf!r} is not a string or "
                                "{\"b64\": ...} object")
        array = np.array(data, dtype=object).reshape(shape)
    else:
        low, high = _INT_RANGES.get(spec.dtype, (None, None))
        for leaf in leaves:
            if isinstance(leaf, bool) or not isinstance(leaf, int):
                raise RestError(HTTPStatus.BAD_REQUEST,
                                f"{name}: JSON value {leaf!r} is not of expected type "
                                f"{spec.dtype.name}")
            if low is not None and not low <= leaf <= high:
                raise RestError(HTTPStatus.BAD_REQUEST,
                                f"{name}: JSON value {leaf} does not fit {spec.dtype.name} "
                                f"({low}..{high})")
        array = np.array(leaves, dtype=spec.dtype.as_numpy_dtype).reshape(shape)
    return tf.constant(array, spec.dtype)


def mnist_samples(path, per_digit=1):
    """A few MNIST test images as `[{"label", "png"}]` (base64 PNG), for the page."""
    from mnist_sum_keras.data import load_mnist

    _, (images, digits) = load_mnist(path)
    samples = []
    for digit in range(10):
        for index in np.flatnonzero(digits == digit)[:per_digit]:
            png = tf.io.encode_png(images[index][..., None]).numpy()
            samples.append({"label": int(digit), "index": int(index),
                            "png": base64.b64encode(png).decode("ascii")})
    return samples


class _Handler(BaseHTTPRequestHandler):
    server_version = "mnist-sum-serve"
    timeout = 30   # Seconds a client may take to send its request.

    def log_message(self, format, *args):
        if self.server.log:
            super().log_message(format, *args)

    def _send(self, status, body, content_type="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def _body(self):
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise RestError(HTTPStatus.LENGTH_REQUIRED, "Content-Length required")
        if int(length) > self.server.max_request_bytes:
            self._discard(int(length))
            raise RestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                            f"Request body of {int(length):,} bytes exceeds the limit of "
                            f"{self.server.max_request_bytes:,}")
        return self.rfile.read(int(length))

    def _discard(self, length):
        """Reads and drops up to `MAX_DISCARD_BYTES` of a body (bounded by `timeout`)."""
        left = min(length, MAX_DISCARD_BYTES)
        try:
            while left > 0:
                chunk = self.rfile.read(min(left, 1 << 16))
                if not chunk:
                    break
                left -= len(chunk)
        except OSError:  # The client gave up, or took longer than `timeout`.
            pass

    def _forward(self, data=None):
        request = urllib.request.Request(self.server.tf_serving + self.path, data=data,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()
        except (urllib.error.URLError, OSError) as e:
            raise RestError(HTTPStatus.BAD_GATEWAY,
                            f"TF Serving at {self.server.tf_serving} is unreachable: {e}"
                            ) from e

    def _handle(self, method):
        path = self.path.split("?", 1)[0]
        if method == "GET" and path in WEB_FILES:
            name, content_type = WEB_FILES[path]
            with open(os.path.join(WEB_DIR, name), "rb") as f:
                return self._send(HTTPStatus.OK, f.read(), content_type)
        if method == "GET" and path == "/samples.json":
            if self.server.samples is None:
                raise RestError(HTTPStatus.NOT_FOUND,
                                "No samples: start the server with --data PATH")
            return self._send(HTTPStatus.OK, self.server.samples)
        match = _API.match(path)
        if not match:
            raise RestError(HTTPStatus.NOT_FOUND, f"Malformed request: {method} {path}")
        data = self._body() if method == "POST" else None
        if self.server.tf_serving:
            return self._send(*self._forward(data))
        servable, verb = self.server.servable, match["verb"]
        servable.check(match["name"], match["version"])
        if method == "GET" and verb is None:
            return self._send(HTTPStatus.OK, servable.status())
        if method == "GET" and verb == "/metadata":
            return self._send(HTTPStatus.OK, servable.metadata())
        if method == "POST" and verb == ":predict":
            try:
                body = json.loads(data)
            except ValueError as e:
                raise RestError(HTTPStatus.BAD_REQUEST, f"JSON Parse error: {e}") from None
            return self._send(HTTPStatus.OK, servable.predict(body))
        raise RestError(HTTPStatus.NOT_FOUND, f"Malformed request: {method} {path}")

    def _dispatch(self, method):
        try:
            self._handle(method)
        except RestError as e:
            self._send(e.status, {"error": e.message})

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")


def make_server(model_dir=None, host="127.0.0.1", port=8501, data_path=None,
                tf_serving=None, max_request_bytes=MAX_REQUEST_BYTES, log=True):
    """A `ThreadingHTTPServer` answering TF Serving's REST API and the page.

    Args:
        model_dir: the model base folder or a version folder (ignored with
            `tf_serving`).
        host: the address to bind; the default serves this machine only.
        port: the port; 0 picks a free one (`server.server_port`).
        data_path: an MNIST npz; if given, the page offers a few test images.
        tf_serving: a TF Serving base URL (e.g. `http://localhost:8501`) to
            forward the `/v1/` API to instead of answering it.
        max_request_bytes: larger request bodies get HTTP 413.
        log: print one line per request to stderr.

    Returns:
        The server, bound and ready for `serve_forever()`.
    """
    servable = None if tf_serving else Servable(model_dir)
    samples = mnist_samples(data_path) if data_path else None
    server = ThreadingHTTPServer((host, port), _Handler)
    server.daemon_threads = True
    server.servable, server.samples, server.log = servable, samples, log
    server.tf_serving = tf_serving.rstrip("/") if tf_serving else None
    server.max_request_bytes = max_request_bytes
    return server
