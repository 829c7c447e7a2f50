"""SCIM Users: create / read / replace / patch / delete, meta and ETags, filters, sorting, paging, attribute
selection, and the directory events and audit entries each change leaves."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.scim.support import (
    ENTERPRISE,
    LIST,
    USER,
    assert_scim_error,
    create_user,
    patch,
    scim_client,
    user_body,
)
from tests.support.server import TenantHandle, TestServer


@pytest.fixture
def scim(tenant: TenantHandle) -> httpx.Client:
    return scim_client(tenant)


def test_create_answers_201_with_meta_location_version_and_etag(scim: httpx.Client) -> None:
    response = scim.post(
        "/Users",
        json=user_body(
            "ada@example.com",
            name={"givenName": "Ada", "familyName": "Lovelace"},
            emails=[{"value": "ada@example.com", "type": "work", "primary": True}],
            externalId="hr-1",
        ),
    )
    assert response.status_code == 201, response.text
    assert response.headers["content-type"].startswith("application/scim+json")
    user = response.json()
    assert user["schemas"] == [USER]
    assert user["userName"] == "ada@example.com"
    assert user["externalId"] == "hr-1"
    assert user["name"] == {"givenName": "Ada", "familyName": "Lovelace"}
    assert "active" not in user  # not sent, so not shown (the directory still enables the account)
    meta = user["meta"]
    assert meta["resourceType"] == "User"
    assert meta["location"].endswith(f"/scim/v2/Users/{user['id']}")
    assert response.headers["location"] == meta["location"]
    assert response.headers["etag"] == meta["version"] == 'W/"1"'
    assert meta["created"].endswith("Z") and meta["lastModified"].endswith("Z")


def test_a_user_name_that_is_not_a_upn_is_kept_as_sent(scim: httpx.Client) -> None:
    user = create_user(scim, "bjensen")
    assert user["userName"] == "bjensen"
    assert scim.get(f"/Users/{user['id']}").json()["userName"] == "bjensen"


def test_enterprise_extension_is_stored_and_rendered(scim: httpx.Client) -> None:
    user = create_user(
        scim,
        "grace@example.com",
        schemas=[USER, ENTERPRISE],
        **{ENTERPRISE: {"employeeNumber": "701984", "department": "Navy", "costCenter": "4130"}},
    )
    got = scim.get(f"/Users/{user['id']}").json()
    assert ENTERPRISE in got["schemas"]
    assert got[ENTERPRISE] == {"employeeNumber": "701984", "department": "Navy", "costCenter": "4130"}


def test_duplicate_user_name_is_409_uniqueness_case_insensitively(scim: httpx.Client) -> None:
    create_user(scim, "dup@example.com")
    assert_scim_error(scim.post("/Users", json=user_body("DUP@example.com")), 409, "uniqueness")
    create_user(scim, "plainname")
    assert_scim_error(scim.post("/Users", json=user_body("PlainName")), 409, "uniqueness")


def test_unknown_attribute_is_invalid_syntax_in_strict_mode(scim: httpx.Client) -> None:
    response = scim.post("/Users", json=user_body("x@example.com", favouriteColour="blue"))
    assert_scim_error(response, 400, "invalidSyntax")


def test_mistyped_value_is_invalid_value_and_nothing_is_written(
    server: TestServer, tenant: TenantHandle
) -> None:
    with scim_client(tenant) as scim:
        assert_scim_error(
            scim.post("/Users", json=user_body("t@example.com", active="yes")), 400, "invalidValue"
        )
    assert server.scalar("SELECT count(*) FROM users WHERE tenant_id = :t", t=tenant.tenant_id) == 0


def test_put_replaces_every_writable_attribute_and_moves_the_version(scim: httpx.Client) -> None:
    user = create_user(scim, "put@example.com", title="Engineer", nickName="p")
    replaced = scim.put(
        f"/Users/{user['id']}", json=user_body("put@example.com", displayName="Put Person", active=False)
    )
    assert replaced.status_code == 200, replaced.text
    body = replaced.json()
    assert "title" not in body and "nickName" not in body
    assert body["displayName"] == "Put Person" and body["active"] is False
    assert body["meta"]["version"] != user["meta"]["version"]


def test_if_match_with_a_stale_etag_is_412_and_nothing_changes(scim: httpx.Client) -> None:
    user = create_user(scim, "etag@example.com", title="Before")
    stale = user["meta"]["version"]
    assert (
        patch(scim, f"/Users/{user['id']}", {"op": "replace", "path": "title", "value": "Now"}).status_code
        == 200
    )
    response = scim.put(
        f"/Users/{user['id']}", json=user_body("etag@example.com", title="Lost"), headers={"If-Match": stale}
    )
    assert_scim_error(response, 412)
    assert scim.get(f"/Users/{user['id']}").json()["title"] == "Now"


def test_if_match_with_the_current_etag_succeeds(scim: httpx.Client) -> None:
    user = create_user(scim, "fresh@example.com")
    response = scim.put(
        f"/Users/{user['id']}",
        json=user_body("fresh@example.com", title="Ok"),
        headers={"If-Match": user["meta"]["version"]},
    )
    assert response.status_code == 200, response.text


def test_if_none_match_with_the_current_etag_is_304(scim: httpx.Client) -> None:
    user = create_user(scim, "cache@example.com")
    response = scim.get(f"/Users/{user['id']}", headers={"If-None-Match": user["meta"]["version"]})
    assert response.status_code == 304
    assert scim.get(f"/Users/{user['id']}", headers={"If-None-Match": 'W/"999"'}).status_code == 200


def test_delete_answers_204_then_404_in_scim_dialect(scim: httpx.Client) -> None:
    user = create_user(scim, "gone@example.com")
    assert scim.delete(f"/Users/{user['id']}").status_code == 204
    assert_scim_error(scim.get(f"/Users/{user['id']}"), 404)


def test_delete_with_a_stale_if_match_is_412(scim: httpx.Client) -> None:
    user = create_user(scim, "keep@example.com")
    assert_scim_error(scim.delete(f"/Users/{user['id']}", headers={"If-Match": 'W/"42"'}), 412)
    assert scim.get(f"/Users/{user['id']}").status_code == 200


# ---------------------------------------------------------------- PATCH


def test_patch_replace_with_value_filter_path_changes_only_the_matching_email(scim: httpx.Client) -> None:
    user = create_user(
        scim,
        "mails@example.com",
        emails=[
            {"value": "w@example.com", "type": "work", "primary": True},
            {"value": "h@example.com", "type": "home"},
        ],
    )
    response = patch(
        scim,
        f"/Users/{user['id']}",
        {"op": "replace", "path": 'emails[type eq "work"].value', "value": "w2@x.com"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["emails"] == [
        {"value": "w2@x.com", "type": "work", "primary": True},
        {"value": "h@example.com", "type": "home"},
    ]


def test_patch_add_without_path_merges_attributes(scim: httpx.Client) -> None:
    user = create_user(scim, "merge@example.com", name={"givenName": "M"})
    response = patch(
        scim,
        f"/Users/{user['id']}",
        {
            "op": "add",
            "value": {"nickName": "mm", "name": {"familyName": "Erge"}, ENTERPRISE: {"division": "R&D"}},
        },
    )
    body = response.json()
    assert body["nickName"] == "mm"
    assert body["name"] == {"givenName": "M", "familyName": "Erge"}
    assert body[ENTERPRISE] == {"division": "R&D"}


def test_patch_remove_with_value_filter_removes_matching_elements(scim: httpx.Client) -> None:
    user = create_user(
        scim,
        "phones@example.com",
        phoneNumbers=[{"value": "1", "type": "work"}, {"value": "2", "type": "mobile"}],
    )
    response = patch(scim, f"/Users/{user['id']}", {"op": "remove", "path": 'phoneNumbers[type eq "work"]'})
    assert response.json()["phoneNumbers"] == [{"value": "2", "type": "mobile"}]


def test_patch_remove_of_an_extension_attribute_by_urn_path(scim: httpx.Client) -> None:
    user = create_user(scim, "ext@example.com", **{ENTERPRISE: {"employeeNumber": "7", "division": "D"}})
    response = patch(scim, f"/Users/{user['id']}", {"op": "remove", "path": f"{ENTERPRISE}:employeeNumber"})
    assert response.json()[ENTERPRISE] == {"division": "D"}


def test_patch_replace_with_unmatched_filter_is_no_target_in_strict_mode(scim: httpx.Client) -> None:
    user = create_user(scim, "nt@example.com")
    response = patch(
        scim,
        f"/Users/{user['id']}",
        {"op": "replace", "path": 'emails[type eq "work"].value', "value": "a@b.c"},
    )
    assert_scim_error(response, 400, "noTarget")


def test_patch_remove_without_path_is_no_target(scim: httpx.Client) -> None:
    user = create_user(scim, "np@example.com")
    assert_scim_error(patch(scim, f"/Users/{user['id']}", {"op": "remove"}), 400, "noTarget")


def test_patch_of_a_read_only_attribute_is_mutability(scim: httpx.Client) -> None:
    user = create_user(scim, "ro@example.com")
    response = patch(scim, f"/Users/{user['id']}", {"op": "replace", "path": "id", "value": "x"})
    assert_scim_error(response, 400, "mutability")


def test_patch_with_an_unparsable_path_is_invalid_path(scim: httpx.Client) -> None:
    user = create_user(scim, "ip@example.com")
    response = patch(scim, f"/Users/{user['id']}", {"op": "replace", "path": "emails[type eq", "value": "x"})
    assert_scim_error(response, 400, "invalidPath")


def test_patch_removing_user_name_is_refused(scim: httpx.Client) -> None:
    user = create_user(scim, "req@example.com")
    assert_scim_error(
        patch(scim, f"/Users/{user['id']}", {"op": "remove", "path": "userName"}), 400, "invalidValue"
    )


def test_patch_active_false_keeps_the_user_readable(scim: httpx.Client) -> None:
    user = create_user(scim, "soft@example.com")
    patch(scim, f"/Users/{user['id']}", {"op": "replace", "path": "active", "value": False})
    got = scim.get(f"/Users/{user['id']}")
    assert got.status_code == 200 and got.json()["active"] is False


# ---------------------------------------------------------------- queries


@pytest.fixture(scope="module")
def people_scim(server: TestServer) -> Iterator[httpx.Client]:
    """One tenant with four users for the read-only query tests (made once per backend)."""
    with scim_client(server.tenant()) as scim:
        for alias, title, active, mail_type in [
            ("amy", "Engineer", True, "work"),
            ("bob", "Manager", True, "home"),
            ("cat", "Engineer", False, "work"),
            ("dan", None, True, "other"),
        ]:
            extra = {"title": title} if title else {}
            create_user(
                scim,
                f"{alias}@example.com",
                active=active,
                emails=[{"value": f"{alias}@mail.test", "type": mail_type, "primary": True}],
                externalId=f"ext-{alias}",
                **extra,
            )
        yield scim


def names(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["schemas"] == [LIST]
    return sorted(r["userName"].split("@")[0] for r in body["Resources"])


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ('userName eq "AMY@example.com"', ["amy"]),
        ('externalId eq "ext-bob"', ["bob"]),
        ('title eq "engineer"', ["amy", "cat"]),
        ('title ne "Engineer"', ["bob", "dan"]),
        ('userName sw "b"', ["bob"]),
        ('userName ew "t@example.com"', ["cat"]),
        ('userName co "T@EX"', ["cat"]),
        ('userName gt "bob@example.com"', ["cat", "dan"]),
        ('userName le "bob@example.com"', ["amy", "bob"]),
        ("title pr", ["amy", "bob", "cat"]),
        ("active eq false", ["cat"]),
        ('title eq "Engineer" and active eq true', ["amy"]),
        ('title eq "Manager" or userName eq "dan@example.com"', ["bob", "dan"]),
        ('not (title eq "Engineer")', ["bob", "dan"]),
        (
            'title eq "Manager" or title eq "Engineer" and active eq false',
            ["bob", "cat"],
        ),  # and binds tighter
        ('(title eq "Engineer" or title eq "Manager") and not (active eq false)', ["amy", "bob"]),
        ('emails[type eq "work"].value eq "cat@mail.test"', ["cat"]),
        ('emails[type eq "work" and value co "amy"]', ["amy"]),
        ('emails.value ew "mail.test" and emails.type eq "home"', ["bob"]),
        ("emails[primary eq true]", ["amy", "bob", "cat", "dan"]),
        ('urn:ietf:params:scim:schemas:core:2.0:User:userName eq "dan@example.com"', ["dan"]),
        ('meta.created gt "2000-01-01T00:00:00Z"', ["amy", "bob", "cat", "dan"]),
    ],
)
def test_filter(people_scim: httpx.Client, expression: str, expected: list[str]) -> None:
    scim = people_scim
    assert names(scim.get("/Users", params={"filter": expression})) == expected


def test_zero_matches_is_200_with_total_results_zero(scim: httpx.Client) -> None:
    body = scim.get("/Users", params={"filter": 'userName eq "nobody@example.com"'}).json()
    assert body["totalResults"] == 0 and body["Resources"] == []


@pytest.mark.parametrize(
    "expression",
    [
        "userName eq",
        'userName xx "a"',
        '(userName eq "a"',
        'nosuch eq "a"',
        "active gt true",
        'userName eq "a" and',
        '"a"',
    ],
)
def test_bad_filter_is_400_invalid_filter(scim: httpx.Client, expression: str) -> None:
    assert_scim_error(scim.get("/Users", params={"filter": expression}), 400, "invalidFilter")


def test_a_filter_with_too_many_comparisons_is_too_many(scim: httpx.Client) -> None:
    expression = " or ".join(f'userName eq "u{i}@example.com"' for i in range(101))
    response = scim.post(
        "/Users/.search",
        json={"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": expression},
    )
    assert_scim_error(response, 400, "tooMany")


def test_password_is_write_only_and_checked(server: TestServer, tenant: TenantHandle) -> None:
    with scim_client(tenant) as scim:
        user = create_user(scim, "pw@example.com", password="Correct-Horse-42")
        assert "password" not in user
        short = patch(scim, f"/Users/{user['id']}", {"op": "replace", "path": "password", "value": "short"})
        assert_scim_error(short, 400, "invalidValue")
    stored = server.scalar("SELECT password_hash FROM users WHERE id = :i", i=user["id"])
    assert stored and stored.startswith("$argon2id$")


def test_sort_and_paging(people_scim: httpx.Client) -> None:
    scim = people_scim
    first = scim.get("/Users", params={"sortBy": "userName", "sortOrder": "descending", "count": 2}).json()
    assert first["totalResults"] == 4 and first["itemsPerPage"] == 2 and first["startIndex"] == 1
    assert [r["userName"] for r in first["Resources"]] == ["dan@example.com", "cat@example.com"]
    second = scim.get(
        "/Users", params={"sortBy": "userName", "sortOrder": "descending", "count": 2, "startIndex": 3}
    ).json()
    assert [r["userName"] for r in second["Resources"]] == ["bob@example.com", "amy@example.com"]
    assert second["totalResults"] == 4


def test_count_zero_returns_only_the_total(people_scim: httpx.Client) -> None:
    scim = people_scim
    body = scim.get("/Users", params={"count": 0}).json()
    assert body["totalResults"] == 4 and body["Resources"] == []


def test_attributes_and_excluded_attributes(people_scim: httpx.Client) -> None:
    scim = people_scim
    amy = scim.get("/Users", params={"filter": 'userName eq "amy@example.com"'}).json()["Resources"][0]
    only = scim.get(f"/Users/{amy['id']}", params={"attributes": "userName,emails.value"}).json()
    assert set(only) == {"schemas", "id", "userName", "emails"}
    assert only["emails"] == [{"value": "amy@mail.test"}]
    without = scim.get(
        "/Users", params={"excludedAttributes": "emails,meta", "filter": 'userName sw "amy"'}
    ).json()
    resource = without["Resources"][0]
    assert "emails" not in resource and "meta" not in resource and resource["userName"] == "amy@example.com"


def test_post_search_takes_the_query_in_the_body(people_scim: httpx.Client) -> None:
    scim = people_scim
    response = scim.post(
        "/Users/.search",
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
            "filter": 'title eq "Engineer"',
            "attributes": ["userName"],
            "sortBy": "userName",
        },
    )
    assert response.status_code == 200, response.text
    assert [r["userName"] for r in response.json()["Resources"]] == ["amy@example.com", "cat@example.com"]


def test_root_search_spans_users_and_groups(scim: httpx.Client) -> None:
    create_user(scim, "amy@example.com", displayName="Amy Lee")
    scim.post(
        "/Groups",
        json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Amy fans"},
    )
    scim.post(
        "/Groups", json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Others"}
    )
    response = scim.post(
        "/.search",
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
            "filter": 'displayName sw "Amy"',
        },
    )
    body = response.json()
    assert sorted(r["meta"]["resourceType"] for r in body["Resources"]) == ["Group", "User"]
    assert body["totalResults"] == 2


# ---------------------------------------------------------------- events and audit


def test_scim_changes_emit_directory_events_and_audit_entries(
    server: TestServer, tenant: TenantHandle
) -> None:
    with scim_client(tenant) as scim:
        user = create_user(scim, "audited@example.com")
        patch(scim, f"/Users/{user['id']}", {"op": "replace", "path": "title", "value": "Auditor"})
        scim.delete(f"/Users/{user['id']}")
    events = [
        r[0]
        for r in server.rows(
            "SELECT type FROM events WHERE tenant_id = :t AND subject_id = :s ORDER BY created_at",
            t=tenant.tenant_id,
            s=user["id"],
        )
    ]
    assert events == ["directory.user.created", "directory.user.updated", "directory.user.deleted"]
    server.wait_for_jobs()
    actors = server.rows(
        "SELECT activity, actor FROM audit_log WHERE tenant_id = :t AND target_id = :s",
        t=tenant.tenant_id,
        s=user["id"],
    )
    assert len(actors) == 3
    assert all("scim client" in str(actor) for _, actor in actors)
