import hashlib

import pytest
from stemserve.core.errors import AuthenticationError, InvalidOptionError
from stemserve.server.auth import ApiKeys, hash_api_key, main


def keys_file(tmp_path, text):
    path = tmp_path / "keys.txt"
    path.write_text(text)
    return path


def test_hash_is_sha256_of_the_key():
    assert hash_api_key("abc") == "sha256:" + hashlib.sha256(b"abc").hexdigest()
    assert hash_api_key("abc") == "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


@pytest.fixture
def keys(tmp_path):
    return ApiKeys.load(keys_file(tmp_path, f"# comment\n\nalice {hash_api_key('k1')}\nbob {hash_api_key('k2')}\n"))


@pytest.mark.parametrize("header,name", [("Bearer k1", "alice"), ("bearer k2", "bob"), ("Bearer   k1  ", "alice")])
def test_known_keys_authenticate_as_their_name(keys, header, name):
    assert keys.authenticate([("user-agent", "x"), ("authorization", header)]) == name


@pytest.mark.parametrize(
    "metadata,fragment",
    [
        ([], "got none"),
        (None, "got none"),
        ([("authorization", "Basic azE=")], "got another scheme"),
        ([("authorization", "Bearer ")], "got another scheme"),
        ([("authorization", "Bearer k3")], "not valid"),
        ([("authorization", "Bearer " + hash_api_key("k1"))], "not valid"),  # the digest is not a key
    ],
)
def test_missing_or_wrong_keys_raise(keys, metadata, fragment):
    with pytest.raises(AuthenticationError, match=fragment):
        keys.authenticate(metadata)


def test_disabled_lets_everyone_in_anonymously():
    keys = ApiKeys.disabled()
    assert not keys.enabled and keys.authenticate([]) is None


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("alice plaintextkey\n", "expected 'NAME sha256:<64 hex digits>'"),
        ("alice sha256:abc\n", "expected 'NAME sha256:<64 hex digits>'"),
        ("# only a comment\n", "expected at least one key line"),
    ],
)
def test_bad_key_files_are_refused_with_the_line(tmp_path, text, fragment):
    with pytest.raises(InvalidOptionError, match=fragment):
        ApiKeys.load(keys_file(tmp_path, text))


def test_missing_key_file(tmp_path):
    with pytest.raises(InvalidOptionError, match="must be a readable file"):
        ApiKeys.load(tmp_path / "absent.txt")


def test_main_prints_a_line_that_authenticates_the_printed_key(tmp_path, capsys):
    assert main(["svc-1"]) == 0
    out, err = capsys.readouterr()
    key = err.strip().rsplit(" ", 1)[1]
    assert ApiKeys.load(keys_file(tmp_path, out)).authenticate([("authorization", f"Bearer {key}")]) == "svc-1"
    assert main(["bad name"]) == 2
