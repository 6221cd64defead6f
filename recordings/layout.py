"""The voicemail keys in Redis and the Lua scripts that change them.

Every key carries the hash tag ``{vm}``, so in Redis Cluster they share a slot
and each script below runs atomically over all of them:

- ``<p>:{vm}:vm:<id>``         hash: one voicemail's metadata, status and transcript
- ``<p>:{vm}:index``           sorted set: voicemail ids by recording time
- ``<p>:{vm}:jobs``            stream, consumer group ``transcribers``: ``{vm: <id>}`` (the
  default site's; a named site's is ``<p>:{vm}:jobs@<site>``, see below)
- ``<p>:{vm}:transcribed``     stream: one event per transcript stored (for complaints, callbacks)
- ``<p>:{vm}:parked``          stream: one event per voicemail given up on, with its error
- ``<p>:{vm}:awaiting:<lang>`` set: voicemails waiting for a model of that language
  (a named site's: ``<p>:{vm}:awaiting@<site>:<lang>``)
- ``<p>:{vm}:counts``          hash: ``recorded``, ``pending``, ``transcribed``, ``parked`` (kept by the scripts)
- ``<p>:{vm}:followed:<name>`` string: the last ``transcribed`` entry a follower handled
- ``<p>:{vm}:urgent:<number>`` string (with a TTL): the caller's last urgent voicemail and its words

**Sites** (:mod:`shenava_base.sites`): a voicemail file is on its site's
Asterisk host, in the folder that site's daemon and workers see
(``recordings.dir``); another site's worker cannot read it. So each site has
its own job stream and awaiting sets, and its workers take only its jobs. The
records, index, counts and the ``transcribed`` stream stay shared (one register
of voicemails for the centre, as complaints are); a named site's record says
its ``site``. Jobs that daemons of named sites queued on the shared stream
before (no ``site`` in the record) are moved to the site's stream by its
workers when they start (:meth:`recordings.queue.JobQueue.adopt_legacy`): those
whose file is in the worker's folder.

Two front ends share this layout: :class:`recordings.store.VoicemailStore`
(redis.asyncio, the daemon) and :class:`recordings.queue.JobQueue` (the
synchronous client, inside worker processes). Nothing else touches these keys.

The status of a voicemail is ``pending`` (waiting for its transcript),
``transcribed`` or ``parked``. Scripts act on a job only while its voicemail is
``pending``, which is what makes a job's effects happen once even when two
workers hold it (one was presumed dead but was only slow).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["GROUP", "Keys", "Status", "VOICEMAIL_ID_RE", "SCRIPTS"]

GROUP = "transcribers"
EVENTS_MAXLEN = 100_000
VOICEMAIL_ID_RE = re.compile(r"^vm-\d{8}-\d{6}-[0-9a-f]{12}$")


class Status:
    PENDING = "pending"
    TRANSCRIBED = "transcribed"
    PARKED = "parked"


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "shenava"
    site: str = ""
    """The site whose job stream and awaiting sets these are ("": the default site's, the
    keys of a single-site install)."""

    @property
    def base(self) -> str:
        return f"{self.prefix}:{{vm}}"

    @property
    def record_prefix(self) -> str:
        return f"{self.base}:vm:"

    def record(self, vm_id: str) -> str:
        return self.record_prefix + vm_id

    @property
    def index(self) -> str:
        return f"{self.base}:index"

    @property
    def jobs(self) -> str:
        return f"{self.base}:jobs@{self.site}" if self.site else self.legacy_jobs

    @property
    def legacy_jobs(self) -> str:
        """The default site's stream, which every site used before jobs were kept per site."""
        return f"{self.base}:jobs"

    @property
    def transcribed(self) -> str:
        return f"{self.base}:transcribed"

    @property
    def parked(self) -> str:
        return f"{self.base}:parked"

    def awaiting(self, lang: str) -> str:
        return f"{self.base}:awaiting@{self.site}:{lang}" if self.site else self.legacy_awaiting(lang)

    def legacy_awaiting(self, lang: str) -> str:
        return f"{self.base}:awaiting:{lang}"

    @property
    def counts(self) -> str:
        return f"{self.base}:counts"

    def followed(self, name: str) -> str:
        return f"{self.base}:followed:{name}"

    def urgent(self, number: str) -> str:
        return f"{self.base}:urgent:{number}"


# KEYS: record, index, jobs, counts   ARGV: id, recorded_at, field, value, ...
REGISTER = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'status', 'pending', 'attempts', 0)
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('XADD', KEYS[3], '*', 'vm', ARGV[1])
redis.call('HINCRBY', KEYS[4], 'recorded', 1)
redis.call('HINCRBY', KEYS[4], 'pending', 1)
return 1
"""

_PARK = """
local function park(error, now)
  redis.call('HSET', KEYS[1], 'status', 'parked', 'parked_at', now, 'last_error', error)
  redis.call('HINCRBY', KEYS[4], 'pending', -1)
  redis.call('HINCRBY', KEYS[4], 'parked', 1)
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', EVENTS_MAXLEN, '*', 'vm', redis.call('HGET', KEYS[1], 'id'),
             'error', error, 'complaint_ref', redis.call('HGET', KEYS[1], 'complaint_ref') or '')
end
local function finish_job()
  redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
  redis.call('XDEL', KEYS[2], ARGV[2])
end
""".replace("EVENTS_MAXLEN", str(EVENTS_MAXLEN))

# KEYS: record, jobs, parked, counts   ARGV: group, entry, max_attempts, now
# -> {'go', attempts, language, file} | {'skip', status} | {'parked', error}
START = _PARK + """
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'pending' then finish_job() return {'skip', status or 'missing'} end
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
if attempts > tonumber(ARGV[3]) then
  local last = redis.call('HGET', KEYS[1], 'last_error') or 'a worker stopped while transcribing it'
  local error = 'gave up after ' .. (attempts - 1) .. ' attempts: ' .. last
  park(error, ARGV[4])
  finish_job()
  return {'parked', error}
end
local f = redis.call('HMGET', KEYS[1], 'language', 'file')
return {'go', attempts, f[1] or '', f[2] or ''}
"""

# KEYS: record, jobs, parked, counts   ARGV: group, entry, error, permanent(0|1), max_attempts, now
# -> 'parked' | 'retry' | 'skip'
FAIL = _PARK + """
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'pending' then finish_job() return 'skip' end
redis.call('HSET', KEYS[1], 'last_error', ARGV[3])
local attempts = tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0')
if ARGV[4] == '1' or attempts >= tonumber(ARGV[5]) then
  park(ARGV[3], ARGV[6])
  finish_job()
  return 'parked'
end
return 'retry'
"""

# KEYS: record, jobs, transcribed, counts   ARGV: group, entry, now, field, value, ...
# -> 1 stored and published, 0 already done by another worker
COMPLETE = """
local status = redis.call('HGET', KEYS[1], 'status')
redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[2], ARGV[2])
if status ~= 'pending' then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('HSET', KEYS[1], 'status', 'transcribed', 'transcribed_at', ARGV[3])
redis.call('HDEL', KEYS[1], 'last_error', 'waiting_for_model')
redis.call('HINCRBY', KEYS[4], 'pending', -1)
redis.call('HINCRBY', KEYS[4], 'transcribed', 1)
local f = redis.call('HMGET', KEYS[1], 'id', 'complaint_ref', 'language', 'urgent', 'urgent_words', 'caller')
redis.call('XADD', KEYS[3], 'MAXLEN', '~', EVENTS_MAXLEN, '*', 'vm', f[1], 'complaint_ref', f[2] or '',
           'language', f[3] or '', 'urgent', f[4] or '0', 'urgent_words', f[5] or '[]', 'caller', f[6] or '')
return 1
""".replace("EVENTS_MAXLEN", str(EVENTS_MAXLEN))

# KEYS: record, jobs, awaiting   ARGV: group, entry, lang
AWAIT_MODEL = """
local status = redis.call('HGET', KEYS[1], 'status')
redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[2], ARGV[2])
if status ~= 'pending' then return 0 end
redis.call('HSET', KEYS[1], 'waiting_for_model', ARGV[3])
redis.call('HINCRBY', KEYS[1], 'attempts', -1)
redis.call('SADD', KEYS[3], redis.call('HGET', KEYS[1], 'id'))
return 1
"""

# KEYS: awaiting, jobs   ARGV: record key prefix -> how many jobs were queued again
REQUEUE_AWAITING = """
local ids = redis.call('SMEMBERS', KEYS[1])
redis.call('DEL', KEYS[1])
local n = 0
for _, id in ipairs(ids) do
  local record = ARGV[1] .. id
  if redis.call('HGET', record, 'status') == 'pending' then
    redis.call('HDEL', record, 'waiting_for_model')
    redis.call('XADD', KEYS[2], '*', 'vm', id)
    n = n + 1
  end
end
return n
"""

# KEYS: record, jobs, counts   ARGV: id -> 1 queued again, 0 not parked
RETRY_PARKED = """
if redis.call('HGET', KEYS[1], 'status') ~= 'parked' then return 0 end
redis.call('HINCRBY', KEYS[3], 'parked', -1)
redis.call('HINCRBY', KEYS[3], 'pending', 1)
redis.call('HSET', KEYS[1], 'status', 'pending', 'attempts', 0)
redis.call('HDEL', KEYS[1], 'parked_at')
redis.call('XADD', KEYS[2], '*', 'vm', ARGV[1])
return 1
"""

# KEYS: jobs   ARGV: group, consumer, entry -> 1 still ours (idle time reset), 0 taken over
HEARTBEAT = """
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #p == 0 or p[1][2] ~= ARGV[2] then return 0 end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
return 1
"""

# KEYS: record, from (a stream), to (a stream)   ARGV: group, entry, vm id, site, take unsited (0|1)
# -> 1 moved to this site's stream, 0 left where it is
ADOPT = """
local status = redis.call('HGET', KEYS[1], 'status')
local site = redis.call('HGET', KEYS[1], 'site')
if status ~= 'pending' then return 0 end
if site then
  if site ~= ARGV[4] then return 0 end
elseif ARGV[5] ~= '1' then
  return 0
end
redis.call('HSET', KEYS[1], 'site', ARGV[4])
redis.call('XADD', KEYS[3], '*', 'vm', ARGV[3])
redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[2], ARGV[2])
return 1
"""

# KEYS: record, from (a set), to (a set)   ARGV: vm id, site, take unsited (0|1) -> 1 moved, 0 left
ADOPT_AWAITING = """
local site = redis.call('HGET', KEYS[1], 'site')
if site then
  if site ~= ARGV[2] then return 0 end
elseif ARGV[3] ~= '1' then
  return 0
end
if redis.call('SMOVE', KEYS[2], KEYS[3], ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], 'site', ARGV[2])
  return 1
end
return 0
"""

SCRIPTS = {
    "register": REGISTER,
    "start": START,
    "fail": FAIL,
    "complete": COMPLETE,
    "await_model": AWAIT_MODEL,
    "requeue_awaiting": REQUEUE_AWAITING,
    "retry_parked": RETRY_PARKED,
    "heartbeat": HEARTBEAT,
    "adopt": ADOPT,
    "adopt_awaiting": ADOPT_AWAITING,
}
