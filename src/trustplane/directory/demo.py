"""The demo data set: a few hundred users of a fictional company in nested groups, made through the
directory services (so events and the audit log are real). Deterministic for a given seed."""

from __future__ import annotations

import random

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from trustplane.core.events import SYSTEM
from trustplane.directory import service
from trustplane.directory.models import User

FIRST = (
    "Ada Alan Barbara Claude Dennis Edsger Frances Grace Hedy Ivan John Katherine Linus Margaret Niklaus "
    "Radia Shafi Tim Vint Whitfield Yukihiro Adele Butler Donald Leslie Ken Bjarne Guido Sophie Karen"
).split()
LAST = (
    "Lovelace Turing Liskov Shannon Ritchie Dijkstra Allen Hopper Lamarr Sutherland Backus Johnson Torvalds "
    "Hamilton Wirth Perlman Goldwasser Berners-Lee Cerf Diffie Matsumoto Goldberg Lampson Knuth Thompson "
    "Stroustrup Rossum Wilson Jones Spärck"
).split()
DEPARTMENTS = {
    "Engineering": ["Platform", "Identity", "Data"],
    "Security": ["SOC", "Red Team"],
    "Sales": ["EMEA", "Americas"],
    "Finance": ["Payroll"],
}


async def seed_demo(
    session: AsyncSession, tenant_id: str, domain: str, *, users: int = 300, seed: int = 7
) -> int:
    """Creates the data set unless the tenant already has users; returns how many users it made."""
    existing = await session.execute(
        select(func.count()).select_from(User).where(User.tenant_id == tenant_id)
    )
    if existing.scalar_one() > 0:
        return 0
    rng = random.Random(seed)
    everyone = await service.create_group(
        session,
        tenant_id,
        SYSTEM,
        {
            "display_name": "All Staff",
            "mail_nickname": "all-staff",
            "mail_enabled": True,
            "security_enabled": True,
            "group_types": [],
            "mail": f"all-staff@{domain}",
        },
    )
    teams: list[tuple[str, str]] = []  # (team group id, department)
    for dept, subteams in DEPARTMENTS.items():
        dept_group = await service.create_group(
            session,
            tenant_id,
            SYSTEM,
            {
                "display_name": dept,
                "mail_nickname": dept.lower(),
                "mail_enabled": False,
                "security_enabled": True,
                "description": f"The {dept} department",
            },
        )
        await service.add_member(session, tenant_id, SYSTEM, everyone.id, dept_group.id)
        for sub in subteams:
            nick = f"{dept}-{sub}".lower().replace(" ", "-")
            team = await service.create_group(
                session,
                tenant_id,
                SYSTEM,
                {
                    "display_name": f"{dept} / {sub}",
                    "mail_nickname": nick,
                    "mail_enabled": True,
                    "security_enabled": True,
                    "group_types": ["Unified"],
                    "mail": f"{nick}@{domain}",
                    "visibility": "Private",
                },
            )
            await service.add_member(session, tenant_id, SYSTEM, dept_group.id, team.id)
            teams.append((team.id, dept))
    for n in range(users):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        alias = f"{first}.{last}{n}".lower().replace("ä", "a").replace("-", "")
        team_id, dept = rng.choice(teams)
        user = await service.create_user(
            session,
            tenant_id,
            SYSTEM,
            {
                "user_principal_name": f"{alias}@{domain}",
                "display_name": f"{first} {last}",
                "given_name": first,
                "surname": last,
                "mail": f"{alias}@{domain}",
                "mail_nickname": alias,
                "account_enabled": rng.random() > 0.05,
                "department": dept,
                "job_title": rng.choice(["Engineer", "Analyst", "Manager", "Director", "Specialist"]),
                "usage_location": "US",
                "other_mails": [f"{alias}@example.org"] if rng.random() < 0.2 else [],
            },
            password=None,
        )
        await service.add_member(session, tenant_id, SYSTEM, team_id, user.id)
    return users
