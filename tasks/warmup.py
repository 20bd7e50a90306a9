"""The Docker SDK made ready in the background while the engine works.

Importing the SDK and opening its client cost ~0.1 s of CPU. A build sent over the
socket without it (engine.build) starts this once the engine has the request, so
the later steps of the run (tag, push, save) find the client ready instead of
making it while the engine idles. The thread only prepares: `Engine.prepare_sdk` takes
a lock, so the main thread waits for a client being made rather than make a second.
A daemon thread: a run whose build was its last step exits without waiting for
a client it no longer needs (the thread is stopped at exit; it only imports and
asks the engine its version, so nothing is left half-written).
"""
import threading


def start(engine):
    """Make `engine`'s SDK client in a background thread (once per engine)."""
    if not engine.warming:
        engine.warming = True
        threading.Thread(target=_make_client, args=(engine,), name="dockflow-sdk-client", daemon=True).start()


def _make_client(engine):
    try:
        engine.prepare_sdk()
    except Exception:  # noqa: BLE001 - the main thread's own use of the client reports it
        pass
