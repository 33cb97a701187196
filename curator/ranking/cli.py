"""`manage.py rank ...`: ranking from the command line (today: print the ratings)."""
from __future__ import annotations

import click
from flask.cli import AppGroup
from sqlalchemy import select

from core.cli import emit, json_option

rank = AppGroup("rank", help="Pairwise ranking: ratings derived from the stored comparisons.")
# manage.py gives every command and sub-command --instance.


def _class_report(session, image_class) -> dict:
    from core.models import Image
    from curator.ranking.service import standings
    table = standings(session, image_class)
    ids = [r.image_id for r in table.rows + table.review]
    images = {i.id: i for i in session.scalars(select(Image).where(Image.id.in_(ids)))} if ids else {}
    return {
        "class": image_class.name, "k": table.k, "k_set": image_class.top_k, "answers": table.answers,
        "competing": table.competing, "settled_in_top_k": table.progress.settled_in,
        "images": [{"rank": r.rank, "id": r.image_id, "file": images[r.image_id].original_filename,
                    "rating": round(r.mu, 6), "uncertainty": round(r.sigma, 6), "comparisons": r.comparisons,
                    "p_top_k": None if r.p_top is None else round(r.p_top, 6), "flagged": r.flagged,
                    "selected": images[r.image_id].selected} for r in table.rows + table.review],
    }


def _count(n: int, noun: str) -> str:
    """'1 answer', '2 answers'."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _human(report: dict) -> str:
    lines = [f"{report['class']}: top {report['k']}{'' if report['k_set'] else ' (default k)'}, "
             f"{report['settled_in_top_k']} settled, {_count(report['answers'], 'answer')}, "
             f"{_count(report['competing'], 'image')} competing"]
    lines.append(f"  {'rank':>4} {'id':>7} {'rating':>8} {'±':>6} {'P(top)':>7} {'n':>5}  file")
    for row in report["images"]:
        p = "flagged" if row["p_top_k"] is None else f"{100 * row['p_top_k']:.0f}%"
        mark = "*" if row["selected"] else " "
        lines.append(f"  {row['rank'] or '-':>4} {row['id']:>7} {row['rating']:>8.2f} {row['uncertainty']:>6.2f} "
                     f"{p:>7} {row['comparisons']:>5} {mark}{row['file']}")
    return "\n".join(lines)


@rank.command("export")
@click.option("--class", "class_name", help="Only this class (default: every class).")
@json_option("the ratings")
def export(class_name: str | None, as_json: bool) -> None:
    """Print every class's ratings (rating ± uncertainty in log-odds, P(in top-k), comparisons), best first.
    * marks images selected for snapshots."""
    from core.db import db
    from core.models import ImageClass
    from curator.ranking.service import get_class
    if class_name is not None:
        image_class = get_class(db.session, class_name.strip().lower())
        if image_class is None:
            known = ", ".join(db.session.scalars(select(ImageClass.name).order_by(ImageClass.name))) or "none"
            raise click.ClickException(f"no class named {class_name!r} (classes: {known})")
        classes = [image_class]
    else:
        classes = list(db.session.scalars(select(ImageClass).order_by(ImageClass.name)))
    reports = [_class_report(db.session, c) for c in classes]
    emit({"classes": reports}, as_json, "\n\n".join(_human(r) for r in reports) if reports else "No classes yet.")


commands = [rank]
