package playground

// Tab is one of the page's default tabs: an operation to start from, and its
// variables (JSON) when it has any.
type Tab struct {
	Query     string `json:"query"`
	Variables string `json:"variables,omitempty"`
}

// DefaultTabs are the tabs a new visitor finds. Each operation validates
// against schema.graphqls (the package's tests check it).
var DefaultTabs = []Tab{
	{Query: `# Welcome to Keyplane.
#
# 1. In Headers, below, put your key (kp_…)
#    in place of the placeholder. It stays
#    in this tab: it is not stored.
# 2. Run with ▶, or Ctrl-Enter.
#
# The team's devices, a page at a time: for
# the next page, pass pageInfo.endCursor as
# $after. The Docs pane (the book, top left)
# describes every type and field.
query Devices($first: Int = 20, $after: String) {
  team {
    devices(first: $first, after: $after) {
      nodes {
        id
        name
        serialNumber
        model
        status
        lastSeenAt
        tags
      }
      pageInfo {
        hasNextPage
        endCursor
      }
      totalCount
    }
  }
}
`},
	{Query: `# Create a key that holds only the scopes it
# needs: here, reading devices. Its secret is
# in the answer, this once: store it now.
# (Needs API_KEYS_WRITE, and every scope the
# new key gets.)
mutation CreateScopedKey($input: CreateApiKeyInput!) {
  createApiKey(input: $input) {
    apiKey {
      id
      name
      scopes
      status
      start
      expiresAt
      allowedCidrs
    }
    secret
  }
}
`, Variables: `{
  "input": {
    "name": "dashboard, read-only",
    "description": "Reads the device list for the status dashboard",
    "scopes": ["DEVICES_READ"]
  }
}
`},
	{Query: `# Give a key a new secret. The old secret
# keeps working for the grace period (here a
# day) while the services that use it switch.
# Find the key's id (key_…) with
#   { team { apiKeys { nodes { id name } } } }
mutation RotateKey($id: ID!, $graceSeconds: Int = 86400) {
  rotateApiKey(input: { id: $id, gracePeriodSeconds: $graceSeconds }) {
    apiKey {
      id
      name
      rotatedAt
      previousSecretExpiresAt
    }
    secret
  }
}
`, Variables: `{
  "id": "key_…"
}
`},
	{Query: `# The audit log, newest first: who changed
# what, from where. For older events, pass
# pageInfo.endCursor as $after.
# Narrow it with $filter, for example
#   { "filter": { "action": "apiKey.rotate" } }
query AuditLog($first: Int = 20, $after: String, $filter: AuditEventFilter) {
  team {
    auditEvents(first: $first, after: $after, filter: $filter, order: NEWEST_FIRST) {
      nodes {
        createdAt
        action
        targetId
        actor {
          id
          name
        }
        ip
        userAgent
      }
      pageInfo {
        hasNextPage
        endCursor
      }
      totalCount
    }
  }
}
`},
}
