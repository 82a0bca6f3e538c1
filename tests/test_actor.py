import contextvars

import pytest

from blobcache import actor


def test_default_actor_is_python():
    assert actor.current_actor() == actor.Actor("python", "")


def test_acting_as_sets_and_restores():
    with actor.acting_as(actor.API, "alice") as who:
        assert who == actor.Actor("api", "alice")
        assert actor.current_actor() == who
        with actor.acting_as(actor.ADMIN, "bob"):
            assert actor.current_actor() == actor.Actor("admin", "bob")
        assert actor.current_actor() == who
    assert actor.current_actor().interface == "python"


def test_acting_as_follows_copied_context():
    with actor.acting_as(actor.NOTIFICATIONS, "registry"):
        context = contextvars.copy_context()
    assert context.run(actor.current_actor) == actor.Actor("notifications", "registry")


def test_unknown_interface_is_refused():
    with pytest.raises(ValueError, match="unknown interface 'web'"):
        with actor.acting_as("web"):
            pass


def test_command_user_names_manage_py(monkeypatch):
    monkeypatch.setenv("LOGNAME", "operator")
    assert actor.command_user() == "operator (manage.py)"
