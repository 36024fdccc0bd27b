"""The CommerceBackend protocol: what skills (and the LLM's tools) may ask of a shop.

Operation names and arguments are the LLM tool names (the tau2-bench retail tools), and the exact effect of
each write on the store is ../shared/data/retail/SEMANTICS.md. Every operation is synchronous and fast (an
in-process look-up or a small write); a refusal raises `CommerceError` and leaves the store unchanged.

Returned dicts are copies in the layout of the store's records (db.json): changing them changes nothing.
"""

from __future__ import annotations

from typing import Any, Protocol

#: The reasons `cancel_pending_order` accepts.
CANCEL_REASONS = ("no longer needed", "ordered by mistake")

#: The read operations, then the write operations, by tool name.
READ_OPERATIONS = (
    "find_user_id_by_email",
    "find_user_id_by_name_zip",
    "get_user_details",
    "get_order_details",
    "get_product_details",
    "list_all_product_types",
)
WRITE_OPERATIONS = (
    "cancel_pending_order",
    "modify_pending_order_address",
    "modify_pending_order_payment",
    "modify_pending_order_items",
    "return_delivered_order_items",
    "exchange_delivered_order_items",
    "modify_user_address",
)


class CommerceError(Exception):
    """A refused or failed operation; the message is safe to show to the shopper's agent.

    Messages start with "Error: ", the way the benchmark's tool results read.
    """


class CommerceBackend(Protocol):
    name: str

    # -- reads ---------------------------------------------------------------------------------------------

    def user_exists(self, user_id: str) -> bool: ...

    def find_user_id_by_email(self, email: str) -> str:
        """The user id whose email matches (case-insensitively)."""
        ...

    def find_user_id_by_name_zip(self, first_name: str, last_name: str, zip: str) -> str:
        """The user id whose first and last name match (case-insensitively) and whose address zip is `zip`."""
        ...

    def get_user_details(self, user_id: str) -> dict[str, Any]: ...

    def get_order_details(self, order_id: str) -> dict[str, Any]: ...

    def get_product_details(self, product_id: str) -> dict[str, Any]: ...

    def list_all_product_types(self) -> dict[str, str]:
        """Product name -> product id, sorted by name."""
        ...

    # -- writes: each returns the changed record (order, or user for modify_user_address) ----------------

    def cancel_pending_order(self, order_id: str, reason: str) -> dict[str, Any]: ...

    def modify_pending_order_address(
        self, order_id: str, address1: str, address2: str, city: str, state: str, country: str, zip: str
    ) -> dict[str, Any]: ...

    def modify_pending_order_payment(self, order_id: str, payment_method_id: str) -> dict[str, Any]: ...

    def modify_pending_order_items(
        self, order_id: str, item_ids: list[str], new_item_ids: list[str], payment_method_id: str
    ) -> dict[str, Any]: ...

    def return_delivered_order_items(
        self, order_id: str, item_ids: list[str], payment_method_id: str
    ) -> dict[str, Any]: ...

    def exchange_delivered_order_items(
        self, order_id: str, item_ids: list[str], new_item_ids: list[str], payment_method_id: str
    ) -> dict[str, Any]: ...

    def modify_user_address(
        self, user_id: str, address1: str, address2: str, city: str, state: str, country: str, zip: str
    ) -> dict[str, Any]: ...
