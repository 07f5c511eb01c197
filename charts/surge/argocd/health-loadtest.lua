-- Argo CD health check for surge.dev/LoadTest (docs/deploy.md, "Argo CD health").
-- Argo CD sets the global `obj` and reads the returned table: status and message.
-- Argo CD runs configmap scripts without Lua's standard libraries (only base, table and
-- a reduced os), so this script uses no string.* or math.* functions.
local function text(v)
  if type(v) == "string" then
    return v
  end
  if type(v) == "number" or type(v) == "boolean" then
    return tostring(v)
  end
  return ""
end

local function field(t, key)
  if type(t) == "table" then
    return t[key]
  end
  return nil
end

local function joined(head, tail)
  if tail == "" then
    return head
  end
  return head .. ": " .. tail
end

local function suspended_by_spec(status)
  local conditions = field(status, "conditions")
  if type(conditions) == "table" then
    for _, c in ipairs(conditions) do
      if field(c, "type") == "Completed" and field(c, "reason") == "Suspended" then
        return true
      end
    end
  end
  return text(field(status, "message")) == "spec.suspend is true"
end

local IN_FLIGHT = {Pending = true, WaitingForTarget = true, Running = true, Analyzing = true}

local hs = {}
local spec = field(obj, "spec")
local status = field(obj, "status")
local phase = text(field(status, "phase"))
local message = text(field(status, "message"))
local terminal = phase == "Succeeded" or phase == "Failed" or phase == "Aborted"

if field(spec, "suspend") == true and not terminal then
  hs.status = "Suspended"
  if phase ~= "" then
    hs.message = "spec.suspend is true (phase " .. phase .. ")"
  else
    hs.message = "spec.suspend is true"
  end
elseif phase == "" then
  hs.status = "Progressing"
  hs.message = "Pending: waiting for the operator to accept the LoadTest"
elseif IN_FLIGHT[phase] then
  hs.status = "Progressing"
  hs.message = joined(phase, message)
elseif phase == "Succeeded" then
  hs.status = "Healthy"
  local verdict = text(field(field(status, "summary"), "verdict"))
  if verdict ~= "" then
    hs.message = joined("Succeeded (verdict " .. verdict .. ")", message)
  else
    hs.message = joined("Succeeded", message)
  end
elseif phase == "Failed" then
  hs.status = "Degraded"
  hs.message = joined("Failed", message)
elseif phase == "Aborted" then
  if suspended_by_spec(status) then
    hs.status = "Suspended"
    hs.message = joined("Aborted (suspended)", message)
      .. "; set spec.suspend to false and change spec.runId to run again"
  else
    hs.status = "Degraded"
    hs.message = joined("Aborted", message)
  end
else
  hs.status = "Unknown"
  hs.message = "unknown phase " .. phase
end
return hs
