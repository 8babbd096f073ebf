-- Routing state changes: every decision about agents, waiting calls and offers, atomically.
--
-- ARGV[1] = key prefix, ARGV[2] = operation, ARGV[3] = JSON arguments (always with now, iso,
-- mod = local minute of day, day = local date). Returns a JSON object.
--
-- Key names are built from the prefix (see docs/cti.md "Redis layout"), so this script needs a
-- single Redis instance (not Redis Cluster). The agents' transition table (cti/state.py) and
-- the calls' phase table (callcenter/call_phases.py) are rendered into the script by
-- cti/routing.py (the placeholders below); there is no second copy.

local prefix = ARGV[1]
local op = ARGV[2]
local A = cjson.decode(ARGV[3])
local RULES = __TRANSITIONS__
local CALL_RULES = __CALL_MOVES__
local R = prefix .. ":routing:"
local NOW = tonumber(A.now)
local ISO = A.iso
local MOD = tonumber(A.mod or 0)
local DAY = A.day or ""
local RING_GRACE = tonumber(A.ring_grace or 1)
local TIMERS = R .. "timers"
local EVENTS = prefix .. ":events"
local AGENT_EVENTS = prefix .. ":agent-events"
-- Commands not tied to a live call (originate) go to the engine nodes' shared stream
-- (Keys.engine_commands): one supervisor takes each and hands it to an idle slot.
local ENGINE_CMD = prefix .. ":engine:cmd"
local ENDED_TTL = 86400
-- The engine hangs up itself once a closing message (no agents, call-back confirmation) has
-- played; routing's own hangup comes this much later, only if the engine did not.
local MESSAGE_BACKSTOP = tonumber(A.message_backstop or 30)
-- Set when this call of the script put a call in a line: the match that follows then reads the
-- lines before the ready sets (a new call meets agents who were already ready; an agent going
-- ready meets calls already waiting). Either order finds the same pairs.
local LINES_FIRST = false

local function akey(aid) return R .. "agent:" .. aid end
local function aqkey(aid) return R .. "agent:" .. aid .. ":queues" end
local function ckey(cid) return R .. "call:" .. cid end
local function qkey(q, what) return R .. "queue:" .. q .. ":" .. what end
local function fmt(n) return string.format("%.3f", n) end

local function hgetall(key)
    local flat = redis.call("HGETALL", key)
    local t = {}
    for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
    return t
end

-- The state a named transition leads to from cur in a rendered table; nil when the table
-- does not allow it.
local function lookup(rules, name, cur)
    local key = ";" .. name .. ":" .. cur .. ">"
    local i = string.find(rules, key, 1, true)
    if not i then return nil end
    local j = i + #key
    return string.sub(rules, j, string.find(rules, ";", j, true) - 1)
end

-- Whether the call phase table lets move name start from phase cur ("" or nil: no record).
local function call_allows(name, cur)
    return lookup(CALL_RULES, name, cur or "") ~= nil
end

-- The one writer of a call's phase (the state field of call:{id}), with the other fields given
-- (name, value, ...). The phase comes from the table; a move the table does not allow from the
-- current phase still happens (this script decided it) but is counted in stats
-- illegal_call_moves, which the property tests keep at zero.
local function move_call(cid, name, ...)
    local ck = ckey(cid)
    local cur = redis.call("HGET", ck, "state") or ""
    local to = lookup(CALL_RULES, name, cur)
    if not to then
        to = string.match(CALL_RULES, ";" .. name .. ":[^;>]*>([^;]*);")
        redis.call("HINCRBY", R .. "stats", "illegal_call_moves", 1)
        redis.call("HSET", R .. "stats", "last_illegal_call_move", name .. ":" .. cur)
    end
    redis.call("HSET", ck, "state", to, ...)
    return to
end

-- Queue settings change only through sync_queues (outside any script): read each once a call.
local CONFS = {}
local function queue_conf(q)
    local conf = CONFS[q]
    if not conf then
        conf = hgetall(qkey(q, "config"))
        CONFS[q] = conf
    end
    return conf
end

local function all_queues()
    local qs = redis.call("SMEMBERS", R .. "queues")
    table.sort(qs)
    return qs
end

local function publish(aid, msg)
    redis.call("PUBLISH", prefix .. ":agent:" .. aid .. ":events", cjson.encode(msg))
end

local function call_event(etype, cid, data)
    redis.call("XADD", EVENTS, "*", "type", etype, "call_id", cid, "slot", "", "node", "routing",
        "at", ISO, "data", cjson.encode(data))
end

local function agent_event(etype, aid, cid, data)
    -- Bounded: the state log (SQL) is the history; the stream only has to outlast a restart.
    redis.call("XADD", AGENT_EVENTS, "MAXLEN", "~", 200000, "*", "type", etype, "agent_id", aid,
        "call_id", cid,
        "slot", "", "node", "routing", "at", ISO, "data", cjson.encode(data))
end

local function command(stream, ctype, cid, data)
    local id = "rt-" .. redis.call("INCR", R .. "cmdseq")
    redis.call("XADD", stream, "*", "type", ctype, "call_id", cid, "id", id,
        "data", cjson.encode(data))
    return id
end

-- A play command carries the prompt's text (rendered by the engine) from routing:prompts; a
-- variant of the text (text_key) may say why, under the same prompt key.
local function prompt_data(key, data, text_key)
    data.prompt = key
    local text = redis.call("HGET", R .. "prompts", text_key or key)
    if text then data.text = text end
    return data
end

local function slot_command(cid, call, ctype, data)
    local slot = redis.call("GET", prefix .. ":call:" .. cid .. ":slot")
    if not slot or slot == "" then slot = call.slot end
    if not slot or slot == "" then return false end
    command(prefix .. ":slot:" .. slot .. ":cmd", ctype, cid, data)
    return true
end

-- Record the end of one queue entry of a call, exactly once.
local function outcome(cid, q, entry, what)
    local fresh = redis.call("HSETNX", ckey(cid), "outcome:" .. entry, what)
    if fresh == 1 then
        redis.call("HINCRBY", R .. "stats:" .. q, what, 1)
    else
        redis.call("HINCRBY", R .. "stats", "duplicate_outcomes", 1)
    end
end

-- ------------------------------------------------------------------ agents

-- Each queue's ready set is ordered so that its strategy's pick is the first eligible entry:
-- longest_idle and round_robin by idle-since, skill_then_longest_idle by skill level then
-- idle-since, fewest_calls by today's answered calls (read when the agent goes ready) then
-- idle-since. Idle-since (epoch seconds, < 1e10) breaks every tie.
local function ready_score(q, aid, level, idle)
    local strategy = queue_conf(q).strategy or "longest_idle"
    if strategy == "skill_then_longest_idle" then
        return (10 - tonumber(level or "0")) * 1e10 + idle
    elseif strategy == "fewest_calls" then
        local f = redis.call("HMGET", akey(aid), "calls_today", "calls_day")
        local calls = 0
        if f[2] == DAY then calls = tonumber(f[1] or "0") end
        return calls * 1e10 + idle
    end
    return idle
end

local function rule(name, cur) return lookup(RULES, name, cur) end

local function transition(aid, name, reason, cid, actor)
    local ak = akey(aid)
    local before = redis.call("HMGET", ak, "state", "call_id", "disposition")
    local cur = before[1] or "logged_out"
    local to = rule(name, cur)
    if not to then return nil, cur end
    local queues = hgetall(aqkey(aid))
    if cur == "ready" and to ~= "ready" then
        for q, _ in pairs(queues) do redis.call("ZREM", qkey(q, "ready"), aid) end
    end
    if to == "ready" then
        for q, level in pairs(queues) do
            redis.call("ZADD", qkey(q, "ready"), ready_score(q, aid, level, NOW), aid)
        end
        redis.call("HSET", ak, "idle_since", fmt(NOW))
    end
    if cur == "wrap_up" and to ~= "wrap_up" then
        local prev = before[2] or ""
        redis.call("ZREM", TIMERS, "wrap|" .. aid .. "|" .. prev)
        if prev ~= "" then
            call_event("wrap_up_ended", prev, {agent_id = tonumber(aid),
                disposition = before[3] or "", by = actor or "routing"})
        end
        redis.call("HSET", ak, "disposition", "", "wrap_until", "")
    end
    reason = reason or ""
    cid = cid or ""
    redis.call("HSET", ak, "state", to, "reason", reason, "since", fmt(NOW), "call_id", cid)
    agent_event("agent_state_changed", aid, cid, {agent_id = tonumber(aid), from = cur, to = to,
        reason = reason, call_id = cid, transition = name, actor = actor or "routing"})
    publish(aid, {type = "state", state = to, from = cur, reason = reason, call_id = cid,
        transition = name, at = ISO})
    return to, cur
end

local function logout(aid, reason, actor)
    local to, cur = transition(aid, "logout", reason, "", actor)
    if not to then return nil, cur end
    for _, q in ipairs(redis.call("HKEYS", aqkey(aid))) do
        redis.call("HDEL", qkey(q, "members"), aid)
        redis.call("ZREM", qkey(q, "ready"), aid)
    end
    redis.call("SREM", R .. "agents", aid)
    agent_event("agent_logged_out", aid, "", {agent_id = tonumber(aid), reason = reason})
    return to, cur
end

local function on_shift(s, e)
    s = tonumber(s or "-1")
    e = tonumber(e or "-1")
    if s < 0 then return true end
    if s < e then return MOD >= s and MOD < e end
    return MOD >= s or MOD < e
end

local function eligible(aid, off_ok)
    local f = redis.call("HMGET", akey(aid), "state", "shift_start", "shift_end")
    return f[1] == "ready" and (off_ok or on_shift(f[2], f[3]))
end

local CHUNK = 16

-- The queue's strategy picks one ready, eligible agent; nil when there is none. The ready set
-- is already in the strategy's order (see ready_score), so the first eligible agent wins;
-- round robin takes the next agent id after the last one it offered to.
local function choose_agent(q, conf)
    local rkey = qkey(q, "ready")
    local off_ok = conf.off_shift == "1"
    if conf.strategy ~= "round_robin" then
        -- The first eligible agent in the set's order wins: read it a chunk at a time, so a
        -- queue with hundreds of ready agents costs no more than one with a few.
        local start = 0
        while true do
            local ready = redis.call("ZRANGE", rkey, start, start + CHUNK - 1)
            for _, aid in ipairs(ready) do
                if eligible(aid, off_ok) then return aid end
            end
            if #ready < CHUNK then return nil end
            start = start + CHUNK
        end
    end
    -- Round robin: the next eligible agent id after the last one offered to, wrapping round.
    local ready = redis.call("ZRANGE", rkey, 0, -1)
    local rr_last = tonumber(redis.call("GET", qkey(q, "rr")) or "0")
    local rr_first, rr_next = nil, nil
    for _, aid in ipairs(ready) do
        local n = tonumber(aid)
        if (rr_first == nil or n < rr_first or (n > rr_last and (rr_next == nil or n < rr_next)))
            and eligible(aid, off_ok) then
            if rr_first == nil or n < rr_first then rr_first = n end
            if n > rr_last and (rr_next == nil or n < rr_next) then rr_next = n end
        end
    end
    local pick = rr_next or rr_first
    if pick then return tostring(pick) end
    return nil
end

-- ------------------------------------------------------------------ calls

local function entry_timers(cid, q, entry)
    local conf = queue_conf(q)
    local tag = cid .. "|" .. entry
    local due = {} -- one ZADD for all of this entry's timers
    local after = tonumber(conf.overflow_after or "0")
    if after > 0 and (conf.overflow_to or "") ~= "" then
        due[#due + 1] = NOW + after
        due[#due + 1] = "overflow|" .. tag
    end
    local cb_after = tonumber(conf.callback_after or "0")
    if cb_after > 0 then
        due[#due + 1] = NOW + cb_after
        due[#due + 1] = "cboffer|" .. tag
    end
    local every = tonumber(conf.announce_every or "0")
    if every > 0 then
        due[#due + 1] = NOW + every
        due[#due + 1] = "announce|" .. tag
    end
    if #due > 0 then redis.call("ZADD", TIMERS, unpack(due)) end
end

local function reserve(cid, call, aid, q, conf)
    redis.call("ZREM", qkey(q, "waiting"), cid)
    local offers = redis.call("HINCRBY", ckey(cid), "offers", 1)
    local callback = call.callback == "1"
    local target = cid
    if callback then target = cid .. ":cb" .. offers end
    -- The agent holds the call id the engine will report on: the new leg for a call-back.
    transition(aid, "reserve", "", target, "routing")
    local agent = redis.call("HMGET", akey(aid), "uri", "extension")
    local ring = tonumber(conf.ring_timeout or "15")
    move_call(cid, "reserve", "agent", aid, "reserved_at", fmt(NOW))
    if conf.strategy == "round_robin" then redis.call("SET", qkey(q, "rr"), aid) end
    if callback then
        -- The caller hung up long ago: place a new call, agent first, then the customer.
        move_call(target, "callback_leg", "kind", "callback_leg", "parent", cid, "agent", aid,
            "queue", q, "offers", 1)
        redis.call("EXPIRE", ckey(target), ENDED_TTL)
        redis.call("HSET", ckey(cid), "leg", target)
    end
    redis.call("ZADD", TIMERS, NOW + ring + RING_GRACE, "ring|" .. target .. "|" .. aid)
    call_event("call_reserved", cid, {queue = q, agent_id = tonumber(aid), agent_uri = agent[1],
        callback = callback, offer = offers})
    if callback then
        command(ENGINE_CMD, "originate", target, {number = call.number, agent_uri = agent[1],
            agent_id = tonumber(aid), purpose = "callback", queue = q, ring_timeout = ring,
            parent_call_id = cid})
    else
        slot_command(cid, call, "offer", {agent_uri = agent[1], agent_id = tonumber(aid),
            ring_timeout = ring, queue = q})
    end
end

-- Offer waiting calls to ready agents until no pair is left: the best call first (priority,
-- then arrival across every queue), each to the agent its queue's strategy picks. The head of
-- each queue's line is read once and looked at again only where a reservation changed it
-- (that queue's line, the reserved agent's queues).
local function match(limit)
    local out, blocked, heads = {}, {}, {}
    local function look(q)
        heads[q] = nil
        if blocked[q] then return end
        local h
        if LINES_FIRST then
            h = redis.call("ZRANGE", qkey(q, "waiting"), 0, 0, "WITHSCORES")
            if #h == 0 or redis.call("ZCARD", qkey(q, "ready")) == 0 then return end
        else
            if redis.call("ZCARD", qkey(q, "ready")) == 0 then return end
            h = redis.call("ZRANGE", qkey(q, "waiting"), 0, 0, "WITHSCORES")
            if #h == 0 then return end
        end
        heads[q] = {q = q, cid = h[1], score = tonumber(h[2])}
    end
    for _, q in ipairs(all_queues()) do look(q) end
    while #out < limit do
        local best = nil
        for _, h in pairs(heads) do
            if best == nil or h.score < best.score or (h.score == best.score and h.q < best.q) then
                best = h
            end
        end
        if best == nil then break end
        local q, cid = best.q, best.cid
        local call = hgetall(ckey(cid))
        if call.state ~= "waiting" or call.queue ~= q then
            redis.call("ZREM", qkey(q, "waiting"), cid) -- stale entry: drop it
            look(q)
        else
            local conf = queue_conf(q)
            local aid = choose_agent(q, conf)
            if aid then
                reserve(cid, call, aid, q, conf)
                out[#out + 1] = {cid, aid, q}
                -- Only two kinds of line can have changed: q (its head left) and the
                -- reserved agent's other queues (the agent left their ready sets). No line
                -- gains a call or an agent here, so a line without a head keeps none.
                look(q)
                for hq, _ in pairs(hgetall(aqkey(aid))) do
                    if heads[hq] then look(hq) end
                end
            else
                blocked[q] = true -- nobody eligible here; later calls of this queue wait too
                heads[q] = nil
            end
        end
    end
    return out
end

-- fields.known: the call's hash as the caller already read it (saves reading it again).
local function new_entry(cid, q, fields)
    local ck = ckey(cid)
    local known = fields.known
    local seq
    if known then seq = known.seq else seq = redis.call("HGET", ck, "seq") end
    if not seq then seq = redis.call("INCR", R .. "seq") end
    local prio = tonumber(fields.priority or "0")
    local score = string.format("%.0f", (9 - prio) * 1e12 + tonumber(seq))
    local entry = redis.call("HINCRBY", ck, "entry", 1)
    move_call(cid, fields.move or "enqueue", "queue", q, "priority", prio, "seq", seq,
        "score", score, "entered_at", fmt(NOW), "agent", "", "offers", 0,
        "callback", fields.callback and "1" or "0", "kind", "inbound")
    if fields.number and fields.number ~= "" then redis.call("HSET", ck, "number", fields.number) end
    local arrived
    if known then arrived = known.arrived_at else arrived = redis.call("HGET", ck, "arrived_at") end
    if not arrived then redis.call("HSET", ck, "arrived_at", fmt(NOW)) end
    redis.call("PERSIST", ck)
    redis.call("ZADD", qkey(q, "waiting"), score, cid)
    LINES_FIRST = true
    redis.call("HINCRBY", R .. "stats:" .. q, "entered", 1)
    entry_timers(cid, q, entry)
    return entry
end

-- move: end, hand_off (transferred) or called_back.
local function end_call_record(cid, move)
    move_call(cid, move, "ended_at", fmt(NOW))
    redis.call("EXPIRE", ckey(cid), ENDED_TTL)
end

local function move_to_queue(cid, call, target, reason)
    local q = call.queue
    redis.call("ZREM", qkey(q, "waiting"), cid)
    outcome(cid, q, call.entry, "overflowed")
    local entry = new_entry(cid, target, {priority = call.priority, callback = call.callback == "1",
        number = call.number, move = "overflow"})
    call_event("call_overflowed", cid, {from_queue = q, to_queue = target, reason = reason,
        waited = NOW - tonumber(call.entered_at or NOW)})
    if call.callback ~= "1" then slot_command(cid, call, "requeue", {queue = target}) end
    return entry
end

local function agent_answered_counts(aid)
    local ak = akey(aid)
    redis.call("HSET", ak, "misses", 0)
    if redis.call("HGET", ak, "calls_day") ~= DAY then
        redis.call("HSET", ak, "calls_day", DAY, "calls_today", 0)
    end
    redis.call("HINCRBY", ak, "calls_today", 1)
end

local function put_back(cid, call)
    -- A missed or failed offer: the call waits again at its own place in line.
    if not call.queue or call.queue == "" or not call.score then
        end_call_record(cid, "end")
        return
    end
    if redis.call("SISMEMBER", R .. "queues", call.queue) == 0 then
        -- its queue was removed while it rang an agent: it waits where the others went
        local target = redis.call("HGET", R .. "retired_queues", call.queue)
        if target and target ~= "" then
            move_to_queue(cid, call, target, "queue_removed")
            return
        end
    end
    move_call(cid, "put_back", "agent", "", "leg", "")
    redis.call("ZADD", qkey(call.queue, "waiting"), call.score, cid)
end

local function miss(cid, aid, reason, actor)
    local call = hgetall(ckey(cid))
    local kind = call.kind or "inbound"
    if call.state == "transferring" and (call.transfer_to or "") == "" then
        -- An outside number did not answer a transfer: the caller waits in line again.
        put_back(cid, call)
        return "requeued"
    end
    local cur = redis.call("HGET", akey(aid), "state")
    if cur ~= "reserved" or redis.call("HGET", akey(aid), "call_id") ~= cid then
        return "ignored"
    end
    if kind == "callback_leg" then
        local parent = hgetall(ckey(call.parent))
        if parent.state == "reserved" and parent.leg == cid then put_back(call.parent, parent) end
        end_call_record(cid, "end")
    elseif kind == "outbound" then
        end_call_record(cid, "end")
    elseif call.transfer_to == aid then
        redis.call("HSET", ckey(cid), "transfer_to", "")
        if call.state == "transferring" then put_back(cid, call) end
    elseif call.state == "reserved" and call.agent == aid then
        put_back(cid, call)
    else
        return "ignored"
    end
    transition(aid, "miss", "missed", cid, actor)
    publish(aid, {type = "missed", call_id = cid, reason = reason, at = ISO})
    local misses = redis.call("HINCRBY", akey(aid), "misses", 1)
    local q = call.queue or ""
    if q ~= "" then
        local limit = tonumber(queue_conf(q).missed_logout or "0")
        if limit > 0 and misses >= limit then
            logout(aid, "missed_offers", "routing")
            return "logged_out"
        end
    end
    return "missed"
end

local function start_wrap_up(aid, cid, q, actor)
    local cur = redis.call("HMGET", akey(aid), "state", "call_id")
    if cur[2] ~= cid or (cur[1] ~= "on_call" and cur[1] ~= "on_hold") then return false end
    transition(aid, "end_call", "", cid, actor)
    local wrap = tonumber(A.default_wrap or "30")
    if q and q ~= "" then wrap = tonumber(queue_conf(q).wrap_up or wrap) end
    if wrap <= 0 then
        transition(aid, "end_wrap_up", "", "", "routing")
    else
        redis.call("HSET", akey(aid), "wrap_until", fmt(NOW + wrap))
        redis.call("ZADD", TIMERS, NOW + wrap, "wrap|" .. aid .. "|" .. cid)
    end
    publish(aid, {type = "ended", call_id = cid, wrap_up_seconds = wrap, at = ISO})
    return true
end

local function update_aht(q, answered_at)
    if not q or q == "" or not answered_at then return end
    local talk = NOW - tonumber(answered_at)
    local key = qkey(q, "aht")
    local old = tonumber(redis.call("GET", key) or "0")
    local new = talk
    if old > 0 then new = old * 0.8 + talk * 0.2 end
    redis.call("SET", key, fmt(new))
end

-- ------------------------------------------------------------------ operations

local res = {}
local dispatch = A.dispatch

if op == "login" then
    local aid = tostring(A.agent)
    local to, cur = transition(aid, "login", "login", "", A.actor)
    if not to then return cjson.encode({error = "illegal", transition = "login", state = cur}) end
    local ak = akey(aid)
    redis.call("HSET", ak, "uri", A.uri, "extension", A.extension, "shift", A.shift or "",
        "shift_start", A.shift_start, "shift_end", A.shift_end, "misses", 0,
        "logged_in_at", fmt(NOW), "user", A.user or "")
    redis.call("DEL", aqkey(aid))
    local names = {}
    for q, level in pairs(A.queues) do
        redis.call("HSET", aqkey(aid), q, level)
        redis.call("HSET", qkey(q, "members"), aid, level)
        names[#names + 1] = q
    end
    redis.call("SADD", R .. "agents", aid)
    agent_event("agent_logged_in", aid, "", {agent_id = tonumber(aid), extension = A.extension,
        queues = A.queues, shift = A.shift or ""})
    res.state = to
elseif op == "logout" then
    local to, cur = logout(tostring(A.agent), A.reason or "", A.actor)
    if not to then return cjson.encode({error = "illegal", transition = "logout", state = cur}) end
    res.state = to
elseif op == "transition" then
    local aid = tostring(A.agent)
    local name = A.transition
    local cur = redis.call("HGET", akey(aid), "state") or "logged_out"
    if name == "ready" and cur == "ready" then
        res.state = "ready" -- asking for the state one is in: nothing to do
    else
        local to
        to, cur = transition(aid, name, A.reason or "", "", A.actor)
        if not to then return cjson.encode({error = "illegal", transition = name, state = cur}) end
        res.state = to
    end
elseif op == "set_queues" then
    local aid = tostring(A.agent)
    local st = redis.call("HGET", akey(aid), "state") or "logged_out"
    local logged_in = st ~= "logged_out"
    for _, q in ipairs(redis.call("HKEYS", aqkey(aid))) do
        redis.call("HDEL", qkey(q, "members"), aid)
        redis.call("ZREM", qkey(q, "ready"), aid)
    end
    redis.call("DEL", aqkey(aid))
    local idle = tonumber(redis.call("HGET", akey(aid), "idle_since") or NOW)
    for q, level in pairs(A.queues) do
        redis.call("HSET", aqkey(aid), q, level)
        if logged_in then redis.call("HSET", qkey(q, "members"), aid, level) end
        if st == "ready" then
            redis.call("ZADD", qkey(q, "ready"), ready_score(q, aid, level, idle), aid)
        end
    end
    if logged_in then
        agent_event("agent_queues_changed", aid, "", {agent_id = tonumber(aid), queues = A.queues,
            actor = A.actor or ""})
        publish(aid, {type = "queues", queues = A.queues, at = ISO})
    end
    res.state = st
elseif op == "enqueue" then
    local cid, q = A.call, A.queue
    if redis.call("SISMEMBER", R .. "queues", q) == 0 then
        return cjson.encode({error = "unknown_queue", queue = q})
    end
    local ck = ckey(cid)
    local call = hgetall(ck)
    if not call_allows("enqueue", call.state) then
        res.status = "duplicate" -- already waiting for an agent
    else
        if call.state == "connected" and call.agent and call.agent ~= "" then
            start_wrap_up(call.agent, cid, call.queue, "routing") -- transferred to a queue
        end
        local given = {}
        for _, f in ipairs({"caller", "slot", "menu_path", "collected", "did"}) do
            if A[f] ~= nil then
                local v = A[f]
                if type(v) == "table" then v = cjson.encode(v) end
                given[#given + 1] = f
                given[#given + 1] = tostring(v)
            end
        end
        if #given > 0 then redis.call("HSET", ck, unpack(given)) end
        local entry = new_entry(cid, q, {priority = A.priority, callback = A.callback,
            number = A.number, known = call})
        res.status = "queued"
        res.entry = entry
        local conf = queue_conf(q)
        local staffed = redis.call("HLEN", qkey(q, "members"))
        res.staffed = staffed
        if staffed == 0 and not A.callback then
            local mode = conf.no_agents or "wait"
            res.no_agents = mode
            local fresh = hgetall(ck)
            if mode == "message" then
                redis.call("ZREM", qkey(q, "waiting"), cid)
                outcome(cid, q, entry, "closed")
                end_call_record(cid, "end")
                -- outcome: the engine no longer treats the caller as waiting (no position
                -- announcements; hanging up now is not abandoning); hangup_after: it hangs up
                -- when the message has played (only the engine knows how long it lasts).
                slot_command(cid, fresh, "play", prompt_data("no_agents", {queue = q,
                    outcome = "closed", hangup_after = true}))
                redis.call("ZADD", TIMERS, NOW + MESSAGE_BACKSTOP, "hangup|" .. cid)
                res.status = "closed"
            elseif mode == "overflow" and (conf.overflow_to or "") ~= "" then
                move_to_queue(cid, fresh, conf.overflow_to, "no_agents")
                res.status = "overflowed"
                res.queue = conf.overflow_to
            elseif mode == "callback" then
                redis.call("HSET", ck, "cb_offered", 1)
                slot_command(cid, fresh, "play", prompt_data("callback_offer", {queue = q,
                    reason = "no_agents"}, "callback_offer.no_agents"))
                res.status = "callback_offered"
            end
        end
    end
elseif op == "callback_requested" then
    local cid, q = A.call, A.queue
    local ck = ckey(cid)
    local call = hgetall(ck)
    if call.state == "reserved" and call.callback ~= "1" and call.agent and call.agent ~= "" then
        -- The caller chose a call-back while an agent's phone was already ringing for them.
        transition(call.agent, "cancel_offer", "", "", "routing")
        put_back(cid, call)
        call = hgetall(ck)
    end
    local number = A.number or ""
    if number == "" then number = call.caller or "" end
    if call.state == "waiting" then
        if call.callback ~= "1" then
            redis.call("HSET", ck, "callback", "1", "number", number)
            if A.confirm then
                -- Asked for by a key press while queued: confirm, then end the caller's leg.
                slot_command(cid, call, "play", {prompt = "system.callback",
                    outcome = "callback", hangup_after = true})
                redis.call("ZADD", TIMERS, NOW + MESSAGE_BACKSTOP, "hangup|" .. cid)
            end
            local rank = redis.call("ZRANK", qkey(call.queue, "waiting"), cid)
            call_event("callback_scheduled", cid, {queue = call.queue, number = number,
                position = (rank or 0) + 1})
            res.status = "scheduled"
        else
            res.status = "duplicate"
        end
    elseif call.state == "reserved" then
        res.status = "duplicate"
    else
        if redis.call("SISMEMBER", R .. "queues", q) == 0 then
            return cjson.encode({error = "unknown_queue", queue = q})
        end
        if A.caller then redis.call("HSET", ck, "caller", A.caller) end
        new_entry(cid, q, {priority = A.priority or 0, callback = true, number = number})
        local rank = redis.call("ZRANK", qkey(q, "waiting"), cid)
        call_event("callback_scheduled", cid, {queue = q, number = number,
            position = (rank or 0) + 1})
        res.status = "scheduled"
    end
elseif op == "answered" then
    local cid = A.call
    local ck = ckey(cid)
    local call = hgetall(ck)
    local aid = A.agent and tostring(A.agent) or ""
    if aid == "" then aid = call.transfer_to or "" end
    if aid == "" then aid = call.agent or "" end
    local a = redis.call("HMGET", akey(aid), "state", "call_id")
    local late = false
    if (a[1] ~= "reserved" or a[2] ~= cid) and A.agent and (call.kind or "inbound") == "inbound"
        and (call.state == "waiting" or call.state == "reserved")
        and (a[1] == "not_ready" or a[1] == "ready") then
        -- The engine's answer came after routing's backstop timer had given up on this agent
        -- (and maybe offered the call to someone else): the answer is the fact that counts.
        if call.state == "reserved" and call.agent ~= aid then
            transition(call.agent, "cancel_offer", "", "", "routing")
            publish(call.agent, {type = "offer_cancelled", call_id = cid, at = ISO})
            redis.call("ZREM", TIMERS, "ring|" .. cid .. "|" .. call.agent)
        end
        redis.call("ZREM", qkey(call.queue, "waiting"), cid)
        call.state = move_call(cid, "reserve_late", "agent", aid)
        late = true
    elseif A.consult and A.agent and (a[1] == "not_ready" or a[1] == "ready")
        and call.state == "connected" and (call.transfer_to or "") == "" and call.agent ~= aid then
        -- A consultation target picked up after routing's backstop had given up on them (and
        -- no other consultation started since): they are talking with the agent, so the
        -- answer counts here too.
        redis.call("HSET", ck, "transfer_to", aid)
        call.transfer_to = aid
        late = true
    end
    if not late and (a[1] ~= "reserved" or a[2] ~= cid) then
        res.status = "ignored"
    else
        local kind = call.kind or "inbound"
        transition(aid, late and "answer_late" or "answer", "", cid, "engine")
        agent_answered_counts(aid)
        redis.call("ZREM", TIMERS, "ring|" .. cid .. "|" .. aid)
        if kind == "callback_leg" then
            local parent = hgetall(ckey(call.parent))
            if parent.state == "reserved" and parent.leg == cid then
                outcome(call.parent, parent.queue, parent.entry, "called_back")
                end_call_record(call.parent, "called_back")
            end
            move_call(cid, "answer", "answered_at", fmt(NOW))
        elseif call.transfer_to == aid and A.consult and call.state ~= "transferring" then
            -- A consultation: the target talks with the agent while the caller waits; the call
            -- stays the agent's until the engine reports the hand-over ("transferred").
            res.consult = true
        elseif call.transfer_to == aid then
            local old = call.agent
            move_call(cid, "take_over", "agent", aid, "transfer_to", "")
            if old and old ~= "" and old ~= aid then start_wrap_up(old, cid, call.queue, "routing") end
        else
            if kind == "inbound" and call.state == "reserved" then
                outcome(cid, call.queue, call.entry, "answered")
            end
            move_call(cid, "answer", "answered_at", fmt(NOW))
        end
        publish(aid, {type = "answered", call_id = cid, at = ISO})
        res.status = "answered"
        res.agent = aid
    end
elseif op == "missed" then
    local cid = A.call
    local aid = A.agent and tostring(A.agent) or ""
    if aid == "" then
        local call = hgetall(ckey(cid))
        aid = call.transfer_to or ""
        if aid == "" then aid = call.agent or "" end
    end
    res.status = miss(cid, aid, A.reason or "no_answer", A.actor or "engine")
elseif op == "ring_timer" then
    local call = hgetall(ckey(A.call))
    res.status = miss(A.call, tostring(A.agent), "ring_timeout", "routing")
    if res.status == "missed" or res.status == "logged_out" then
        -- The engine rings for ring_timeout and should have given up already: make sure that
        -- phone stops before the call rings anyone else (an offer the match below makes goes
        -- to the same stream, after this command).
        slot_command(A.call, call, "cancel_offer", {agent_id = tonumber(A.agent),
            reason = "ring_timeout"})
    end
elseif op == "hangup" then
    -- The caller hung up (abandoned / caller_hung_up) or the call ended (call_ended).
    local cid = A.call
    local ck = ckey(cid)
    local call = hgetall(ck)
    local kind = call.kind or "inbound"
    -- The caller's leg is gone: nothing left to hang up after a message (call-back
    -- confirmation, no agents), and a hangup sent later would only come back as command_failed.
    redis.call("ZREM", TIMERS, "hangup|" .. cid)
    if call.state == "waiting" then
        if call.callback == "1" then
            res.status = "callback_kept"
        else
            redis.call("ZREM", qkey(call.queue, "waiting"), cid)
            outcome(cid, call.queue, call.entry, "abandoned")
            end_call_record(cid, "end")
            res.status = "abandoned"
        end
    elseif call.state == "reserved" and kind == "inbound" and call.callback ~= "1" then
        transition(call.agent, "cancel_offer", "", "", "routing")
        publish(call.agent, {type = "offer_cancelled", call_id = cid, at = ISO})
        outcome(cid, call.queue, call.entry, "abandoned")
        end_call_record(cid, "end")
        res.status = "abandoned"
    elseif call.state == "reserved" and (kind == "callback_leg" or kind == "outbound") then
        -- The placed call failed before the agent answered their leg.
        local aid = call.agent
        local a = redis.call("HMGET", akey(aid), "state", "call_id")
        if a[1] == "reserved" and a[2] == cid then
            transition(aid, "cancel_offer", "", "", "routing")
            publish(aid, {type = "offer_cancelled", call_id = cid, at = ISO})
        end
        if kind == "callback_leg" then
            local parent = hgetall(ckey(call.parent))
            if parent.state == "reserved" and parent.leg == cid then put_back(call.parent, parent) end
        end
        end_call_record(cid, "end")
        res.status = "failed"
    elseif (call.state == "connected" or call.state == "transferring") and A.final then
        if call.agent and call.agent ~= "" then start_wrap_up(call.agent, cid, call.queue, "engine") end
        if call.transfer_to and call.transfer_to ~= "" then
            local t = call.transfer_to
            local a = redis.call("HMGET", akey(t), "state", "call_id")
            if a[1] == "reserved" and a[2] == cid then transition(t, "cancel_offer", "", "", "routing")
            elseif (a[1] == "on_call" or a[1] == "on_hold") and a[2] == cid then
                transition(t, "end_consult", "", "", "routing") -- the call ended mid-consultation
            end
        end
        update_aht(call.queue, call.answered_at)
        end_call_record(cid, "end")
        res.status = "ended"
    else
        res.status = "ignored"
    end
elseif op == "hold" or op == "unhold" then
    local call = hgetall(ckey(A.call))
    local aid = call.agent or ""
    local a = redis.call("HMGET", akey(aid), "state", "call_id")
    if aid ~= "" and a[2] == A.call then
        local to, cur = transition(aid, op, "", A.call, "engine")
        res.status = to and op or "ignored"
    else
        res.status = "ignored"
    end
elseif op == "transferred" then
    -- The engine moved the caller away from the agent (blind transfer).
    local cid = A.call
    local call = hgetall(ckey(cid))
    if call.state == "transferring" and (call.transfer_to or "") == "" then
        end_call_record(cid, "hand_off") -- the outside number answered
        res.status = "transferred"
    elseif call.state == "connected" and call.agent and call.agent ~= "" then
        local t = call.transfer_to or ""
        local ta = redis.call("HMGET", akey(t), "state", "call_id")
        if A.consult and A.kind == "agent" and t ~= "" and ta[2] == cid
            and (ta[1] == "on_call" or ta[1] == "on_hold") then
            -- A consultation completed: the target, on the call since they answered, keeps the
            -- caller; the consulting agent goes to wrap-up.
            start_wrap_up(call.agent, cid, call.queue, "engine")
            redis.call("HSET", ckey(cid), "agent", t, "transfer_to", "")
            res.status = "transferred"
            res.agent = t
        elseif A.kind == "agent" and call.transfer_to and call.transfer_to ~= "" then
            start_wrap_up(call.agent, cid, call.queue, "engine")
            move_call(cid, "transfer_out")
            res.status = "transferring"
        elseif A.kind == "queue" and A.to and redis.call("SISMEMBER", R .. "queues", A.to) == 1 then
            start_wrap_up(call.agent, cid, call.queue, "engine")
            move_call(cid, "requeue")
            new_entry(cid, A.to, {priority = call.priority})
            res.status = "requeued"
        else
            start_wrap_up(call.agent, cid, call.queue, "engine")
            end_call_record(cid, "hand_off")
            res.status = "transferred"
        end
    else
        res.status = "ignored"
    end
elseif op == "transfer_number" then
    -- The engine drops the agent's leg at once and rings the number; it reports
    -- "transferred" only when the number answers.
    local cid = A.call
    local call = hgetall(ckey(cid))
    if call.state ~= "connected" then return cjson.encode({error = "not_connected", state = call.state or ""}) end
    if call.agent and call.agent ~= "" then start_wrap_up(call.agent, cid, call.queue, A.actor) end
    move_call(cid, "transfer_out", "transfer_to", "")
    res.status = "transferring"
elseif op == "transfer_agent" then
    -- Reserve the target agent for a call the current agent hands over (blind or consult).
    local cid, target = A.call, tostring(A.target)
    local call = hgetall(ckey(cid))
    if call.state ~= "connected" then return cjson.encode({error = "not_connected", state = call.state or ""}) end
    if call.transfer_to and call.transfer_to ~= "" then return cjson.encode({error = "busy_transfer"}) end
    local to, cur = transition(target, "reserve", "", cid, A.actor)
    if not to then return cjson.encode({error = "illegal", transition = "reserve", state = cur}) end
    redis.call("HSET", ckey(cid), "transfer_to", target)
    local conf = queue_conf(call.queue or "")
    local ring = tonumber(conf.ring_timeout or "15")
    redis.call("ZADD", TIMERS, NOW + ring + RING_GRACE, "ring|" .. cid .. "|" .. target)
    local uri = redis.call("HGET", akey(target), "uri")
    res.status = "reserved"
    res.agent_uri = uri
    res.ring_timeout = ring
elseif op == "release_transfer" then
    -- The engine ended a consultation without handing the caller over, or refused a transfer
    -- to an agent: the target reserved (or talking) for this call is let go. Not answering
    -- within the ring time is a missed offer (missed-offer rules); a target who declined, was
    -- cancelled by the consulting agent, or talked and hung up is back to ready.
    local cid, t = A.call, tostring(A.agent)
    local call = hgetall(ckey(cid))
    local a = redis.call("HMGET", akey(t), "state", "call_id")
    if (call.transfer_to or "") ~= t or a[2] ~= cid then
        res.status = "ignored"
    elseif a[1] == "reserved" and A.reason == "no_answer" then
        res.status = miss(cid, t, "ring_timeout", "engine")
    else
        redis.call("HSET", ckey(cid), "transfer_to", "")
        redis.call("ZREM", TIMERS, "ring|" .. cid .. "|" .. t)
        if a[1] == "reserved" then
            transition(t, "cancel_offer", "", "", "engine")
            publish(t, {type = "offer_cancelled", call_id = cid, reason = A.reason or "", at = ISO})
        elseif a[1] == "on_call" or a[1] == "on_hold" then
            transition(t, "end_consult", "", "", "engine")
        end
        res.status = "released"
    end
elseif op == "originate" then
    -- Click-to-call: reserve the agent, then the engine rings the agent's leg first.
    local aid, cid = tostring(A.agent), A.call
    local to, cur = transition(aid, "originate", "", cid, A.actor)
    if not to then return cjson.encode({error = "illegal", transition = "originate", state = cur}) end
    move_call(cid, "originate", "kind", "outbound", "agent", aid,
        "number", A.number, "caller", A.number, "queue", "", "arrived_at", fmt(NOW))
    redis.call("EXPIRE", ckey(cid), ENDED_TTL)
    local uri = redis.call("HGET", akey(aid), "uri")
    redis.call("ZADD", TIMERS, NOW + tonumber(A.ring_timeout) + RING_GRACE, "ring|" .. cid .. "|" .. aid)
    command(ENGINE_CMD, "originate", cid, {number = A.number, agent_uri = uri,
        agent_id = tonumber(aid), purpose = "click_to_call", trunk = A.trunk,
        ring_timeout = tonumber(A.ring_timeout), customer_id = A.customer_id})
    res.status = "originating"
elseif op == "wrap_end" then
    local aid, cid = tostring(A.agent), A.call or ""
    local a = redis.call("HMGET", akey(aid), "state", "call_id")
    if a[1] ~= "wrap_up" or (cid ~= "" and a[2] ~= cid) then
        if A.strict then
            return cjson.encode({error = "illegal", transition = "end_wrap_up", state = a[1] or "logged_out"})
        end
        res.status = "ignored"
    else
        if A.disposition then redis.call("HSET", akey(aid), "disposition", A.disposition) end
        local target = A.then_state or "ready"
        if target == "not_ready" then
            transition(aid, "not_ready", A.reason or "after_call", "", A.actor or "routing")
        else
            transition(aid, "end_wrap_up", "", "", A.actor or "routing")
        end
        res.status = "ended"
    end
elseif op == "wrap_extend" then
    local aid = tostring(A.agent)
    local a = redis.call("HMGET", akey(aid), "state", "call_id", "wrap_until")
    if a[1] ~= "wrap_up" then
        return cjson.encode({error = "illegal", transition = "extend_wrap_up", state = a[1] or "logged_out"})
    end
    local base = math.max(tonumber(a[3] or NOW) or NOW, NOW)
    local untl = base + tonumber(A.seconds)
    redis.call("HSET", akey(aid), "wrap_until", fmt(untl))
    if A.disposition then redis.call("HSET", akey(aid), "disposition", A.disposition) end
    redis.call("ZADD", TIMERS, untl, "wrap|" .. aid .. "|" .. a[2])
    publish(aid, {type = "wrap_up", call_id = a[2], until_epoch = untl, at = ISO})
    res.status = "extended"
    res.wrap_until = untl
elseif op == "disposition" then
    local aid = tostring(A.agent)
    local a = redis.call("HMGET", akey(aid), "state", "call_id")
    if a[1] ~= "wrap_up" and a[1] ~= "on_call" and a[1] ~= "on_hold" then
        return cjson.encode({error = "illegal", transition = "disposition", state = a[1] or "logged_out"})
    end
    redis.call("HSET", akey(aid), "disposition", A.disposition)
    res.status = "ok"
elseif op == "overflow" then
    local cid = A.call
    local call = hgetall(ckey(cid))
    local conf = queue_conf(call.queue or "")
    if call.state == "waiting" and call.entry == tostring(A.entry) and call.callback ~= "1"
        and (conf.overflow_to or "") ~= "" then
        move_to_queue(cid, call, conf.overflow_to, "wait")
        res.status = "overflowed"
        res.queue = conf.overflow_to
    elseif call.state == "reserved" and call.entry == tostring(A.entry) then
        -- Ringing an agent right now: look again shortly (a miss puts it back in line).
        redis.call("ZADD", TIMERS, NOW + 1, "overflow|" .. cid .. "|" .. A.entry)
        res.status = "later"
    else
        res.status = "ignored"
    end
elseif op == "retire_queues" then
    -- Queues the configuration no longer has (A.keep: the ones it has). Their settings and
    -- membership in the queue set go; the calls waiting in one move, keeping their place by
    -- arrival, to its overflow queue when that still exists, else to A.fallback
    -- (call_overflowed, reason queue_removed); a call ringing an agent follows if the agent
    -- misses it (put_back). A queue defined again is simply a queue again.
    local keep = {}
    for _, q in ipairs(A.keep) do keep[q] = true end
    local retired, moved = {}, 0
    for _, q in ipairs(all_queues()) do
        if not keep[q] then
            local target = queue_conf(q).overflow_to or ""
            if not keep[target] then target = A.fallback or "" end
            if target ~= "" then
                for _, cid in ipairs(redis.call("ZRANGE", qkey(q, "waiting"), 0, -1)) do
                    local call = hgetall(ckey(cid))
                    if call.state == "waiting" and call.queue == q then
                        move_to_queue(cid, call, target, "queue_removed")
                        moved = moved + 1
                    end
                end
            end
            redis.call("SREM", R .. "queues", q)
            redis.call("DEL", qkey(q, "config"))
            redis.call("HSET", R .. "retired_queues", q, target)
            retired[#retired + 1] = q
        end
    end
    for _, q in ipairs(A.keep) do redis.call("HDEL", R .. "retired_queues", q) end
    res.retired = retired
    res.moved = moved
    res.status = "ok"
elseif op == "offer_callback" then
    local cid = A.call
    local call = hgetall(ckey(cid))
    if call.state == "waiting" and call.entry == tostring(A.entry) and call.callback ~= "1"
        and call.cb_offered ~= "1" then
        redis.call("HSET", ckey(cid), "cb_offered", 1)
        slot_command(cid, call, "play", prompt_data("callback_offer", {queue = call.queue,
            reason = A.reason or "wait", expected_wait = A.expected_wait}))
        res.status = "offered"
    elseif call.state == "reserved" and call.entry == tostring(A.entry) and A.reason == "wait" then
        redis.call("ZADD", TIMERS, NOW + 1, "cboffer|" .. cid .. "|" .. A.entry)
        res.status = "later"
    else
        res.status = "ignored"
    end
elseif op == "reprioritize" then
    local call = hgetall(ckey(A.call))
    local prio = tonumber(A.priority)
    if call.state == "waiting" and prio > tonumber(call.priority or "0") then
        local score = string.format("%.0f", (9 - prio) * 1e12 + tonumber(call.seq))
        redis.call("HSET", ckey(A.call), "priority", prio, "score", score)
        redis.call("ZADD", qkey(call.queue, "waiting"), score, A.call)
        res.status = "raised"
    else
        res.status = "ignored"
    end
elseif op == "hangup_caller" then
    local call = hgetall(ckey(A.call))
    if slot_command(A.call, call, "hangup", {by = "routing", reason = A.reason or ""}) then
        res.status = "sent"
    else
        res.status = "ignored"
    end
elseif op == "call_rule" then
    -- Read only: the phase the rendered call table gives move A.move from A.from ("" = none).
    res.to = lookup(CALL_RULES, A.move, A.from or "") or cjson.null
    res.status = "ok"
elseif op == "match" then
    res.status = "ok"
    dispatch = true
else
    return cjson.encode({error = "unknown_operation", op = op})
end

if dispatch then
    res.offers = match(tonumber(A.limit or 1000))
end
return cjson.encode(res)
