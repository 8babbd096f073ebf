"""Erasure by number beyond the calls: ticket contacts, customer records, the routing state.

Called by :func:`recordings.retention.erase_number` inside its transaction, so everything
about a number goes (or nothing does) in one commit, with one audit entry per deletion. The
audit entries carry the number's fingerprint, never the number.

What is matched: the number as given and its normalised form (``cti.numbers``); a ticket's
contact is free text ("138-0013-8000"), so it is compared normalised. What goes:

- a ticket's contact (and the contact in its timeline's data); the ticket itself stays (it
  is the center's record of the work done), with ``contact`` emptied;
- a satisfaction call-back's number;
- a customer record: the matching phone row; when it was the customer's only number the
  customer goes too (units links, phones), and tickets, calls and call-backs that pointed
  to it keep their own rows without the link;
- the ended calls' routing state in Redis (``call:{id}``): caller, digits, menu path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from callcenter.context import AppContext
from cti.models import Call, Customer, CustomerPhone, CustomerUnit
from cti.numbers import normalize
from ticketing.models import SatisfactionCallback, Ticket, TicketEvent

# the routing hash fields that hold what the caller said or keyed
ROUTING_FIELDS = ("caller", "collected", "menu_path")

Audit = Callable[..., None]  # record_audit bound to the erasure's actor, reason and address


@dataclass
class RecordsErased:
    tickets_redacted: list[str] = field(default_factory=list)  # ticket numbers
    callbacks_redacted: int = 0
    customer_phones_deleted: int = 0
    customers_deleted: list[int] = field(default_factory=list)
    routing_states_redacted: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "tickets_redacted": self.tickets_redacted,
            "callbacks_redacted": self.callbacks_redacted,
            "customer_phones_deleted": self.customer_phones_deleted,
            "customers_deleted": self.customers_deleted,
            "routing_states_redacted": self.routing_states_redacted,
        }


def number_forms(number: str) -> set[str]:
    return {number, normalize(number)} - {""}


def _same_number(text: str | None, forms: set[str]) -> bool:
    return bool(text) and (text in forms or normalize(str(text)) in forms)


def erase_tickets(session: Session, forms: set[str], audit: Audit, out: RecordsErased) -> None:
    # a contact is free text: narrow by the last digits in SQL, compare normalised here
    tail = min(forms, key=len)[-4:]
    for ticket in session.scalars(select(Ticket).where(Ticket.contact.contains(tail))):
        if not _same_number(ticket.contact, forms):
            continue
        ticket.contact = ""
        redacted = 0
        for event in session.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket.id)):
            data = dict(event.data or {})
            if any(_same_number(str(v), forms) for v in data.values() if isinstance(v, str)):
                event.data = {
                    k: ("" if isinstance(v, str) and _same_number(v, forms) else v)
                    for k, v in data.items()
                } | {"redacted": True}
                redacted += 1
        out.tickets_redacted.append(ticket.number)
        audit(
            action="ticket.contact_erased",
            object_type="ticket",
            object_id=ticket.number,
            extra={"timeline_entries": redacted},
        )
    for callback in session.scalars(
        select(SatisfactionCallback).where(SatisfactionCallback.number.in_(forms))
    ):
        callback.number = ""
        out.callbacks_redacted += 1
        audit(action="callback.number_erased", object_type="callback", object_id=str(callback.id))


def erase_customers(session: Session, forms: set[str], audit: Audit, out: RecordsErased) -> None:
    phones = list(session.scalars(select(CustomerPhone).where(CustomerPhone.number.in_(forms))))
    for phone in phones:
        customer_id = phone.customer_id
        others = session.scalar(
            select(func.count())
            .select_from(CustomerPhone)
            .where(CustomerPhone.customer_id == customer_id, CustomerPhone.id != phone.id)
        )
        session.delete(phone)
        session.flush()
        out.customer_phones_deleted += 1
        audit(
            action="customer_phone.erased",
            object_type="customer",
            object_id=str(customer_id),
            extra={"customer_kept": bool(others)},
        )
        if others:
            continue  # a household reachable at other numbers keeps its record
        for table in (Ticket, Call, SatisfactionCallback):
            session.execute(
                update(table).where(table.customer_id == customer_id).values(customer_id=None)
            )
        session.execute(delete(CustomerUnit).where(CustomerUnit.customer_id == customer_id))
        session.execute(delete(CustomerPhone).where(CustomerPhone.customer_id == customer_id))
        customer = session.get(Customer, customer_id)
        if customer is not None:
            session.delete(customer)
        out.customers_deleted.append(customer_id)
        audit(action="customer.erased", object_type="customer", object_id=str(customer_id))


def erase_routing_states(
    ctx: AppContext, calls: list[Call], audit: Audit, out: RecordsErased
) -> None:
    """The routing hash of each ended call (a live call still needs its caller's number)."""
    for call in calls:
        if call.ended_at is None:
            continue
        if ctx.redis.hdel(ctx.keys.routing(f"call:{call.id}"), *ROUTING_FIELDS):
            out.routing_states_redacted += 1
            audit(action="call_state.redacted", object_type="call", object_id=call.id)
