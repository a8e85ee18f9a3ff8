"""Unit tests for the reference farm's pieces: ranges, faults, tokens, content."""

import base64
import hashlib
import time

import pytest

from cdl_tui.core.model.units import parse_size
from cdl_tui.farm.app import BadRequest, decode_cursor, encode_cursor
from cdl_tui.farm.content import POOL_SIZE, ContentPool
from cdl_tui.farm.faults import parse_faults
from cdl_tui.farm.files import ByteRange, parse_range
from cdl_tui.farm.signing import check_file_signature, decode_jwt, encode_jwt, sign_file


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, ByteRange(200, 0, 100)),
        ("bytes=0-9", ByteRange(206, 0, 10)),
        ("bytes=90-", ByteRange(206, 90, 100)),
        ("bytes=90-200", ByteRange(206, 90, 100)),
        ("bytes=-10", ByteRange(206, 90, 100)),
        ("bytes=-500", ByteRange(206, 0, 100)),
        ("bytes=100-", ByteRange(416, 0, 0)),
        ("bytes=-0", ByteRange(416, 0, 0)),
        ("bytes=0-1,5-6", ByteRange(200, 0, 100)),  # multi-range: ignored
        ("bytes=9-3", ByteRange(200, 0, 100)),  # malformed: ignored
        ("items=0-3", ByteRange(200, 0, 100)),
    ],
)
def test_range_headers(header, expected):
    assert parse_range(header, 100) == expected


def test_fault_specs_parse_and_reject_nonsense():
    plan = parse_faults(
        "500=0.1, 503=0.2,cut=0.05,corrupt=0.01,slow=0.5,slow_delay=0.2,"
        "bandwidth=2MiB,norange=1,api500=0.3,seed=4"
    )
    assert plan.status_codes == {500: 0.1, 503: 0.2}
    assert (plan.cut, plan.corrupt, plan.slow, plan.slow_delay) == (0.05, 0.01, 0.5, 0.2)
    assert plan.bandwidth == 2 * 1024 * 1024
    assert plan.ignore_range and plan.active
    assert not parse_faults("").active
    for bad in ("cut", "cut=2", "explode=0.1", "bandwidth=fast", "200=0.1"):
        with pytest.raises(ValueError):
            parse_faults(bad)


def test_faults_with_a_seed_repeat():
    def sequence():
        plan = parse_faults("500=0.3,cut=0.3,seed=9")
        return [plan.file_fault() for _ in range(50)]

    assert sequence() == sequence()
    assert any(sequence()) and not all(sequence())


def test_sizes():
    assert parse_size("512KiB") == 512 * 1024
    assert parse_size("4MB") == 4_000_000
    assert parse_size("40MB/s") == 40_000_000
    assert parse_size("1.5GiB") == int(1.5 * 1024**3)
    with pytest.raises(ValueError):
        parse_size("lots")


def test_signed_urls_expire_and_cannot_be_forged():
    secret = b"s" * 32
    later = int(time.time()) + 60
    sig = sign_file(secret, 7, later)
    assert check_file_signature(secret, 7, str(later), sig) is None
    assert check_file_signature(secret, 8, str(later), sig) == "bad signature"
    assert check_file_signature(b"x" * 32, 7, str(later), sig) == "bad signature"
    past = int(time.time()) - 1
    assert check_file_signature(secret, 7, str(past), sign_file(secret, 7, past)) == (
        "signature expired"
    )


def test_jwts_carry_the_audience_and_expire():
    secret = b"k" * 32
    token = encode_jwt({"aud": "http://127.0.0.1:9", "exp": time.time() + 60}, secret)
    assert decode_jwt(token, secret)["aud"] == "http://127.0.0.1:9"
    assert decode_jwt(token, b"other" * 8) is None
    assert decode_jwt(token + "x", secret) is None
    assert decode_jwt(encode_jwt({"exp": time.time() - 1}, secret), secret) is None


def test_cursors_round_trip_and_garbage_is_refused():
    assert decode_cursor(encode_cursor(41)) == 41
    with pytest.raises(BadRequest):
        decode_cursor("garbage!")


def test_content_is_deterministic_and_ranges_agree_with_the_whole():
    pool = ContentPool(5)
    size = POOL_SIZE + 12345  # wraps around the pool
    whole = pool.read(1000, size)
    assert len(whole) == size
    assert ContentPool(5).read(1000, size) == whole
    assert b"".join(pool.chunks(1000, 777, 5000, 1000)) == whole[777:5000]
    expected = base64.b64encode(hashlib.md5(whole).digest()).decode()
    assert pool.md5_base64(1000, size) == expected
    assert ContentPool(6).read(1000, 64) != whole[:64]
