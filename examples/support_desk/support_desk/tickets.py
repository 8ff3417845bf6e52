"""The help desk's world: customers, their recurring account quirks, and deterministic ticket suites.

Every customer has, for each kind of issue, one fix that works on *their* account (their quirk), and a third of
them have a contract that requires a change approval before any fix. Quirks are drawn from the suite seed and
never shown: an agent learns them only by trying fixes, so a memory that keeps what fixed a customer's ticket
pays off when the customer comes back with the same issue.

Splits of a suite (all from ``random.Random(f"support-desk:{seed}")``, nothing else):

* ``train``: backlog tickets from the six regular customers (up to :data:`BACKLOG_ACTIONS` actions each);
* ``id``: live tickets (:data:`LIVE_ACTIONS` actions) from regular customers, each with an issue that one of the
  train tickets had for the same customer (new ticket number and wording);
* ``ood``: live tickets from six customers never seen in train.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

#: customers; a suite picks 6 regulars and 6 newcomers among them
CUSTOMERS = ("northwind", "globex", "initech", "umbrella", "hooli", "vandelay", "wonka", "tyrell", "cyberdyne",
             "soylent", "oscorp", "gringotts", "monarch", "aperture", "nakatomi", "weyland", "zorg", "duff",
             "krusty", "dunder", "sirius", "prestige", "bluth", "massive")
#: issue kind -> (its label in goals, what customers write)
ISSUES: dict[str, tuple[str, tuple[str, ...]]] = {
    "login": ("login failures", ("Since this morning none of our staff can sign in.",
                                 "People get bounced back to the sign-in page over and over.",
                                 "Half of the team is locked out of the portal.")),
    "email": ("missing notifications", ("Our notification messages stopped arriving yesterday.",
                                        "Customers say they no longer get our order notices.",
                                        "Nothing has reached our inboxes from your platform since Monday.")),
    "reports": ("broken reports", ("The weekly report is empty again.",
                                   "Every export we run comes out blank.",
                                   "Our dashboards show zeros for last month.")),
    "payments": ("failed payments", ("Card payments are declined for all of our buyers.",
                                     "Checkout says payment failed, every time.",
                                     "No payment has gone through since the weekend.")),
    "speed": ("slow pages", ("Every page takes half a minute to load.",
                             "The app crawls during business hours.",
                             "Screens time out before they finish loading.")),
    "integrations": ("stalled integrations", ("Our warehouse integration stopped picking up orders.",
                                              "The calendar integration has not updated for two days.",
                                              "Webhooks to our CRM are queueing up.")),
}
#: the fixes a support agent can apply; each works for some customers' issues and does nothing for others
FIXES = ("clear sso cache", "reset user passwords", "resync mail routing", "rebuild search index",
         "renew tls certificate", "reissue api token", "raise rate limit", "restart sync worker",
         "refresh billing profile", "restore default permissions")
APPROVAL = "request change approval"
BACKLOG_ACTIONS = 15
LIVE_ACTIONS = 3
REGULARS = NEWCOMERS = 6


@dataclass(frozen=True)
class Customer:
    name: str
    fixes: dict[str, str]  # issue -> the fix that works for this customer
    needs_approval: bool


def customers(seed: int) -> tuple[list[Customer], list[Customer]]:
    """The suite's regular customers and its newcomers (deterministic for ``seed``)."""
    rng = random.Random(f"support-desk:{seed}:customers")
    names = rng.sample(CUSTOMERS, REGULARS + NEWCOMERS)
    people = [Customer(n, {issue: rng.choice(FIXES) for issue in ISSUES}, rng.random() < 1 / 3) for n in names]
    return people[:REGULARS], people[REGULARS:]


def ticket_params(rng: random.Random, customer: Customer, issue: str, actions: int, used: set[int]) -> dict:
    """Everything ``reset`` needs to set one ticket up again (JSON-serialisable)."""
    number = rng.randint(1000, 9999)
    while number in used:
        number = rng.randint(1000, 9999)
    used.add(number)
    return {"customer": customer.name, "issue": issue, "fix": customer.fixes[issue],
            "needs_approval": customer.needs_approval, "ticket": number,
            "wording": rng.randrange(len(ISSUES[issue][1])), "order": rng.randrange(2**31), "step_limit": actions}


def suite_params(seed: int, n_train: int, n_test: int) -> dict[str, list[dict]]:
    """The params of every ticket of a suite, by split."""
    rng = random.Random(f"support-desk:{seed}:tickets")
    regulars, newcomers = customers(seed)
    used: set[int] = set()
    issues = sorted(ISSUES)
    train_pairs = [(rng.choice(regulars), rng.choice(issues)) for _ in range(n_train)]
    train = [ticket_params(rng, c, i, BACKLOG_ACTIONS, used) for c, i in train_pairs]
    recurring = rng.sample(train_pairs, len(train_pairs)) or [(rng.choice(regulars), rng.choice(issues))]
    ids = [ticket_params(rng, *recurring[k % len(recurring)], LIVE_ACTIONS, used) for k in range(n_test)]
    ood = [ticket_params(rng, rng.choice(newcomers), rng.choice(issues), LIVE_ACTIONS, used)
           for _ in range(n_test)]
    return {"train": train, "id": ids, "ood": ood}
