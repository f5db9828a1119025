"""psycopg 3 with the SQLAlchemy ORM, through the sfpg proxy.

Inserts, updates and deletes Accounts with the unit of work (flush, commit), and rolls
one change back. Prints what it did as JSON on stdout for tests/proxy_clients.rs to check
against the emulated org. The connection URL comes from SFPG_PROXY_URL.
"""

import json
import os
import sys

from sqlalchemy import BigInteger, String, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column


class Base(DeclarativeBase):
    pass


class Account(Base):
    __tablename__ = "account"
    __table_args__ = {"schema": "salesforce"}

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    sfid: Mapped[str | None] = mapped_column(String(18))
    name: Mapped[str | None] = mapped_column(String)
    billingcity: Mapped[str | None] = mapped_column(String)


def main() -> None:
    engine = create_engine(os.environ["SFPG_PROXY_URL"])
    done = {}
    with Session(engine) as session:
        # Insert: flushed (the INSERT runs), then committed (the push).
        account = Account(name="ORM Co", billingcity="Bordeaux")
        session.add(account)
        session.flush()
        local_id = account.id
        session.commit()
        session.refresh(account)
        done["inserted"] = account.sfid

        # Update one field of an existing row.
        existing = session.scalars(
            select(Account).where(Account.sfid.is_not(None), Account.id != local_id).order_by(Account.id)
        ).first()
        existing.billingcity = "Toulouse"
        session.commit()
        done["updated"] = existing.sfid

        # A change rolled back never reaches Salesforce.
        existing.billingcity = "Never"
        session.flush()
        session.rollback()

        # Delete.
        doomed = session.scalars(
            select(Account).where(Account.sfid.is_not(None), Account.id != local_id, Account.id != existing.id).order_by(Account.id)
        ).first()
        done["deleted"] = doomed.sfid
        session.delete(doomed)
        session.commit()
    json.dump(done, sys.stdout)


if __name__ == "__main__":
    main()
