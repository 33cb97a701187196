"""Which augmentations a run uses, decided from its data: the default never teaches the model pictures the data
does not contain (a mirrored 2 is not a 2; a mirrored cat is still a cat)."""
from __future__ import annotations

import math

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


AUGMENT_DIM = 5  # [mirrored, dx / S, dy / S, cos(rotation) - 1, sin(rotation)]


def nonleaky_augment(x, p: float, generator):
    """EDM's non-leaky augmentation (Karras et al. 2022), the small version: each transform (a mirror, an integer
    shift of up to 1/8 of the side, a quarter turn) applies with probability `p`, and the returned labels
    [B, AUGMENT_DIM] tell the model what was done; sampling passes no labels (all zero: nothing done), so the
    model learns from more pictures without drawing mirrored, shifted or turned ones. x: [B,C,S,S] on any device.
    """
    import torch

    b, _, s, _ = x.shape
    r = torch.rand(b, 6, generator=generator)
    flip = r[:, 0] < p
    shift = r[:, 1] < p
    turn = r[:, 2] < p
    m = max(1, s // 8)
    dx = torch.where(shift, (r[:, 3] * (2 * m + 1)).long() - m, 0)
    dy = torch.where(shift, (r[:, 4] * (2 * m + 1)).long() - m, 0)
    k = torch.where(turn, 1 + (r[:, 5] * 3).long().clamp(max=2), 0)  # 1..3 quarter turns
    out = []
    for i in range(b):
        xi = x[i].flip(-1) if flip[i] else x[i]
        if dx[i] or dy[i]:
            xi = torch.roll(xi, shifts=(int(dy[i]), int(dx[i])), dims=(-2, -1))
        if k[i]:
            xi = torch.rot90(xi, int(k[i]), dims=(-2, -1))
        out.append(xi)
    angle = k.double() * math.pi / 2
    labels = torch.stack([flip.double(), dx.double() / s, dy.double() / s, torch.cos(angle) - 1, torch.sin(angle)],
                         dim=1).float()
    return torch.stack(out), labels.to(x.device)
