"""Pure wire helpers: query and filter encoding, auth headers, path stat, the status → error map."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from workbench import errors
from workbench.client import _wire


def test_query_encodes_like_the_docker_cli():
    q = _wire.query(all=True, force=False, t=["a:1", "a:latest"], buildargs={"A": "1"}, name=None,
                    tail=10, all_=None)
    assert q == [("all", "1"), ("force", "0"), ("t", "a:1"), ("t", "a:latest"),
                 ("buildargs", '{"A":"1"}'), ("tail", "10")]


def test_path_quotes_arguments_but_keeps_image_name_slashes():
    assert _wire.path("/images/{}/json", "127.0.0.1:5000/a/b:1") == "/images/127.0.0.1:5000/a/b:1/json"
    assert _wire.path("/containers/{}/json", "a b?") == "/containers/a%20b%3F/json"


@pytest.mark.parametrize("filters,expected", [
    (None, None),
    ({}, None),
    ({"name": "web"}, {"name": ["web"]}),
    ({"dangling": True}, {"dangling": ["true"]}),
    ({"label": ["a=b", "c"]}, {"label": ["a=b", "c"]}),
    ({"status": {"exited": True, "running": False}}, {"status": ["exited"]}),
    ({"exited": 0}, {"exited": ["0"]}),
    ({"label": []}, None),
])
def test_filters_use_docker_py_list_shape(filters, expected):
    encoded = _wire.encode_filters(filters)
    assert (json.loads(encoded) if encoded else None) == expected


def test_auth_header_is_base64url_json():
    assert _wire.encode_auth({}) == "e30="
    assert _wire.encode_auth(None) == "e30="
    value = _wire.encode_auth({"username": "u", "password": "p?>"})
    assert json.loads(base64.urlsafe_b64decode(value)) == {"username": "u", "password": "p?>"}
    assert "+" not in value and "/" not in value


def test_path_stat_header_decodes_with_or_without_padding():
    doc = {"name": "passwd", "size": 12, "mode": 420, "mtime": "2024-01-01T00:00:00Z", "linkTarget": ""}
    raw = base64.b64encode(json.dumps(doc).encode()).decode()
    assert _wire.decode_path_stat(raw) == doc
    assert _wire.decode_path_stat(raw.rstrip("=")) == doc
    assert _wire.decode_path_stat(None) == {}


@pytest.mark.parametrize("status,cls", [(400, errors.InvalidArgument), (401, errors.Unauthorized),
                                        (403, errors.Forbidden), (404, errors.NotFound),
                                        (409, errors.Conflict), (500, errors.APIError),
                                        (501, errors.NotImplementedByEngine), (503, errors.Unavailable)])
def test_status_maps_to_error_class_with_daemon_message(status, cls):
    response = httpx.Response(status, json={"message": "No such image: x"})
    with pytest.raises(cls) as caught:
        _wire.raise_for_status(response)
    assert str(caught.value) == "No such image: x"
    assert caught.value.status == status
    assert _wire.from_daemon(caught.value)


def test_error_text_falls_back_to_body_then_reason():
    assert str(_wire.error_from_body(404, b"404 page not found\n")) == "404 page not found"
    assert str(_wire.error_from_body(500, b"", "Internal Server Error")) == "500 Internal Server Error"
    assert str(_wire.error_from_body(400, b'["odd"]')) == '["odd"]'


def test_success_and_not_modified_pass():
    _wire.raise_for_status(httpx.Response(200))
    _wire.raise_for_status(httpx.Response(204))
    _wire.raise_for_status(httpx.Response(304))  # start/stop of an already started/stopped container


def test_local_errors_are_not_from_daemon():
    assert not _wire.from_daemon(errors.InvalidArgument("bad"))
