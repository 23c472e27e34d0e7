"""A log database belongs to one deployment: the chain id and EvidenceLedger it anchors to.

Entries are signed over an EIP-712 domain that names the chain and the ledger, and the
checkpoints of a log only mean something on the ledger that holds them. A log database
paired with another deployment (a copied file, a wrong ``--deployment``) would anchor
nothing ("nothing to anchor": its anchor rows look current) and audit as empty ("no
checkpoints on chain yet"). So the first writer that knows the deployment records it
(:func:`bind_log`), and every later opener with a deployment in hand checks it
(:func:`check_log_binding`): a mismatch is :class:`~service.errors.LogBoundElsewhere`
naming both sides.

A database created before this table existed is bound on first use to the deployment of
its anchor rows when it has some (so an old log still refuses the wrong ledger), else to
the deployment given.
"""

from __future__ import annotations

from sqlalchemy import inspect
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from service.errors import LogBoundElsewhere
from service.evidence.models import AnchorRow, LogBinding

__all__ = ["bind_log", "check_log_binding", "log_binding"]

_ROW_ID = 1


def _same(a: str, b: str) -> bool:
    return a.lower() == b.lower()


def _describe(chain_id: int, ledger: str) -> str:
    return f"chain {chain_id}, EvidenceLedger {ledger}"


def log_binding(session: Session) -> tuple[int, str] | None:
    """The deployment this log is bound to: its own row, else that of its first anchor."""
    bind = session.get_bind()
    has_table = inspect(bind).has_table(LogBinding.__tablename__)  # an older database may lack it
    row = session.get(LogBinding, _ROW_ID) if has_table else None
    if row is not None:
        return row.chain_id, row.ledger
    first = session.exec(select(AnchorRow).order_by(col(AnchorRow.seq))).first()
    if first is not None:
        return first.chain_id, first.contract
    return None


def _refuse(bound: tuple[int, str], chain_id: int, ledger: str) -> LogBoundElsewhere:
    return LogBoundElsewhere(
        f"this log database belongs to {_describe(*bound)}, not to {_describe(chain_id, ledger)}:"
        " use the deployment it was created with, or a new database"
    )


def check_log_binding(session: Session, *, chain_id: int, ledger: str) -> None:
    """Raise :class:`LogBoundElsewhere` when the log is bound to another deployment.

    A read check: writes nothing (auditors open the operator's database read-only).
    """
    bound = log_binding(session)
    if bound is not None and not (bound[0] == chain_id and _same(bound[1], ledger)):
        raise _refuse(bound, chain_id, ledger)


def bind_log(*, engine: Engine, chain_id: int, ledger: str) -> None:
    """Bind the log to ``(chain_id, ledger)`` if it is not bound yet, else check the binding.

    Safe under concurrent first use: two writers racing to insert the row end with one row,
    and the loser checks against it.
    """
    with Session(engine) as session:
        bound = log_binding(session)
        if bound is not None:
            if not (bound[0] == chain_id and _same(bound[1], ledger)):
                raise _refuse(bound, chain_id, ledger)
            if session.get(LogBinding, _ROW_ID) is not None:
                return
        session.add(LogBinding(id=_ROW_ID, chain_id=chain_id, ledger=ledger))
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            check_log_binding(session, chain_id=chain_id, ledger=ledger)
