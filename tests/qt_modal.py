"""Driving the app's modal dialogs from a test (shared by the UI test files)."""
from __future__ import annotations


def when_modal(action) -> dict:
    """Call ``action(dialog, seen)`` once the app's modal dialog is up (the test then calls the blocking opener, e.g.
    ``open_calibration``); returns ``seen``. An exception in ``action`` lands in ``seen["error"]`` and rejects the
    dialog, so a failing check never leaves it open (which would hang the test)."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication
    seen: dict = {}

    def poll():
        dlg = QApplication.activeModalWidget()
        if dlg is None:
            QTimer.singleShot(50, poll)
            return
        try:
            action(dlg, seen)
        except Exception as e:  # noqa: BLE001
            seen["error"] = repr(e)
            dlg.reject()
    QTimer.singleShot(50, poll)
    return seen


def click_when_modal(button_text: str, fill=None) -> dict:
    """When the next modal dialog opens: ``fill(dialog)`` if given, then click the button labelled ``button_text``
    (as ``when_modal``: a failure is kept in ``seen["error"]`` and the dialog rejected)."""
    from PySide6.QtWidgets import QAbstractButton

    def act(dlg, seen):
        seen["dialog"] = dlg
        if fill is not None:
            fill(dlg)
        for b in dlg.findChildren(QAbstractButton):
            if b.text().replace("&", "") == button_text:
                b.click()
                return
        raise AssertionError(f"no button {button_text!r} in {dlg}")
    return when_modal(act)
