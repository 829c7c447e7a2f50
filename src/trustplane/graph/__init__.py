"""The Microsoft-Graph-compatible face: users, groups, memberships, with OData query options and
Graph's error shape. It translates the wire format to directory service calls and owns no data."""
