"""A client for the model served by TF Serving's REST API (no TensorFlow needed)."""

import base64
import json
import urllib.error
import urllib.request

from mnist_sum_keras import contract
from mnist_sum_keras.config import MODEL_NAME

DEFAULT_URL = f"http://localhost:8501/v1/models/{MODEL_NAME}:predict"
FORMATS = ("instances", "inputs")
OUTPUTS = ("digit", "sum", "digit_probabilities", "sum_probabilities")


def _body(signature, columns, request_format):
    if request_format == "instances":
        body = [dict(zip(columns, values)) for values in zip(*columns.values())]
    elif request_format == "inputs":
        body = columns
    else:
        raise ValueError(f"request_format must be one of {FORMATS}. "
                         f"Received: request_format={request_format!r}")
    return {"signature_name": signature, request_format: body}


def build_request(images, numbers, request_format="instances"):
    """The JSON body of a `serving_default` request, checked against the contract.

    TF Serving's JSON layer casts each pixel to uint8 without a range check
    (256 would arrive as 0), so this client refuses such values before sending.

    Args:
        images: (batch, 28, 28) integer pixels 0..255 (`contract.check_images`).
        numbers: one integer 0..9, or one per image (`contract.check_numbers`).
        request_format: "instances" (row format, one object per example) or
            "inputs" (column format, one list per input).

    Returns:
        A dict ready for `json.dumps`.
    """
    images = contract.check_images(images)
    numbers = contract.check_numbers(numbers, len(images))
    return _body(contract.SIGNATURE_KEY, {"image": images.tolist(),
                                          "number": numbers.tolist()}, request_format)


def build_image_request(image_bytes, numbers, request_format="instances"):
    """The JSON body of a `predict_image` request: encoded images as `{"b64": ...}`.

    Args:
        image_bytes: a list of PNG, JPEG, GIF or BMP file contents (bytes).
        numbers: one integer 0..9, or one per image.
        request_format: as for `build_request`.
    """
    if not isinstance(image_bytes, (list, tuple)):
        raise ValueError(contract.refusal(contract.IMAGE_BYTES_SHAPE_RULE,
                                          type(image_bytes).__name__))
    if not image_bytes:
        raise ValueError(contract.refusal(contract.EMPTY_RULE, "0 images"))
    for item in image_bytes:
        if not isinstance(item, bytes):
            raise ValueError(contract.refusal(contract.IMAGE_BYTES_FORMAT_RULE,
                                              type(item).__name__))
    numbers = contract.check_numbers(numbers, len(image_bytes))
    encoded = [{"b64": base64.b64encode(b).decode("ascii")} for b in image_bytes]
    return _body(contract.PREDICT_IMAGE_KEY, {"image_bytes": encoded,
                                              "number": numbers.tolist()}, request_format)


def parse_response(body):
    """Turns a TF Serving REST response into a list of per-example dicts.

    Accepts both answers: `{"predictions": [...]}` (row) and `{"outputs":
    {...}}` (column). A response with `"error"` raises `RuntimeError` with
    the server's message. A `predict_image` picture with no digit (`"found":
    false`) gives `found` False, its `reason`, and None for digit and sum.
    """
    if "error" in body:
        raise RuntimeError(f"TF Serving refused the request: {body['error']}")
    if "predictions" in body:
        rows = body["predictions"]
    elif "outputs" in body:
        columns = body["outputs"]
        rows = [dict(zip(columns, values)) for values in zip(*columns.values())]
    else:
        raise ValueError(f"Not a TF Serving predict response: keys {sorted(body)}")
    results = []
    for row in rows:
        missing = [name for name in OUTPUTS if name not in row]
        if missing:
            raise ValueError(f"TF Serving response lacks the outputs {missing}")
        if not row.get("found", True):  # predict_image found no digit in this picture.
            results.append({"digit": None, "sum": None, "digit_probability": None,
                            "sum_probability": None, "found": False,
                            "reason": row.get("reason", "")})
            continue
        results.append({
            "digit": int(row["digit"]),
            "sum": int(row["sum"]),
            "digit_probability": float(row["digit_probabilities"][int(row["digit"])]),
            "sum_probability": float(row["sum_probabilities"][int(row["sum"])]),
        })
    return results


def post(body, url=DEFAULT_URL, timeout=30):
    """Sends one request body to TF Serving's predict URL; returns `parse_response`."""
    data = json.dumps(body).encode()
    request = urllib.request.Request(url, data=data,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = json.load(response)
    except urllib.error.HTTPError as e:  # 400 carries TF Serving's error JSON.
        body = json.load(e)
    return parse_response(body)


def predict(images, numbers, url=DEFAULT_URL, request_format="instances", timeout=30):
    """`serving_default` on raw images through TF Serving (`build_request`)."""
    return post(build_request(images, numbers, request_format), url, timeout)


def predict_image(image_bytes, numbers, url=DEFAULT_URL, request_format="instances",
                  timeout=30):
    """`predict_image` on encoded image files through TF Serving."""
    return post(build_image_request(image_bytes, numbers, request_format), url, timeout)
