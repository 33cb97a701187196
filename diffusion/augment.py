"""Which augmentations a run uses, decided from its data: the default never teaches the model pictures the data
does not contain (a mirrored 2 is not a 2; a mirrored cat is still a cat)."""
from __future__ import annotations

KEEP_WHEN_MIRRORED = 0.9  # flips on when the no-flip classifier still knows >= 90 % of what it knew, mirrored


def flip_decision(setting: str, mirror: dict | None, num_classes: int) -> dict:
    """{"setting", "flip" (bool: flips used), "why", "evidence"} for the run's `flip` setting ("on"/"off"/"auto").

    `mirror` is `Evaluator.mirror_test()` of a classifier fitted without flips: of the held-back images it
    recognises, the share it still recognises mirrored ("kept"). "auto" turns flips on only when that share is
    at least KEEP_WHEN_MIRRORED and the classifier is clearly better than chance; otherwise off (the safe side).
    """
    if setting in ("on", "off"):
        return {"setting": setting, "flip": setting == "on", "why": f"flips {setting}: chosen by the user",
                "evidence": None}
    if not mirror or not mirror.get("n"):
        return {"setting": "auto", "flip": False, "evidence": mirror,
                "why": "flips off: no held-back images to test whether mirrored pictures keep their class"}
    acc, kept = mirror.get("accuracy") or 0.0, mirror.get("kept")
    chance = 1.0 / max(1, num_classes)
    evidence = {k: mirror.get(k) for k in ("n", "accuracy", "mirrored_accuracy", "kept")}
    figures = (f"a classifier trained without flips recognises {acc:.0%} of {mirror['n']} held-back images, "
               f"{mirror.get('mirrored_accuracy', 0):.0%} when mirrored")
    if acc < min(0.9, 2 * chance) or kept is None:
        return {"setting": "auto", "flip": False, "evidence": evidence,
                "why": f"flips off: {figures}; too close to chance ({chance:.0%}) to tell whether mirroring is safe"}
    if kept >= KEEP_WHEN_MIRRORED:
        return {"setting": "auto", "flip": True, "evidence": evidence,
                "why": f"flips on: {figures} (keeps {kept:.0%} of what it knew): mirrored pictures keep their class"}
    return {"setting": "auto", "flip": False, "evidence": evidence,
            "why": f"flips off: {figures} (keeps only {kept:.0%} of what it knew): mirrored pictures look like "
                   "something else, so the model would learn pictures the data does not contain"}
