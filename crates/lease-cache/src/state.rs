//! The cache's data behind its one lock: entries in a slab, the indexes over them, the
//! parent/child tree, the LRU order and the renewal schedule.
//!
//! Everything links by slab index (`u32`), so an entry costs a fixed, small amount beyond
//! its strings and response, and a token is stored once: a lease names its owner by index, and
//! the token index finds entries by hashing the token text held in the entry itself.
//! Request paths and the header sets of stored responses are interned: the thousands of
//! entries created by one route, with the same few headers, share one copy of each.
//! Schedule items carry the entry's generation, so an item left behind by an evicted or
//! rescheduled entry is recognised and skipped instead of searched for and removed.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::Duration;

use hashbrown::HashTable;
use tracing::debug;

use crate::cache::{CacheStats, InFlight, NotCached};
use crate::clear::ClearRequest;
use crate::key::CacheKey;
use crate::lifetime::{self, Next};
use crate::paths::{ROOT_NAMESPACE, Revocation};
use crate::renew::Renewal;
use crate::response::{Heads, Pending, Stored};
use crate::secret::SecretToken;

/// "No entry" in a link field.
const NIL: u32 = u32::MAX;
/// "Never" in a time field (milliseconds since the cache's epoch).
pub(crate) const NEVER: u64 = u64::MAX;
/// Most schedule items one [`State::take_due`] handles under the lock.
const ITEMS_PER_PASS: usize = 1024;
/// Most keys remembered as plain (see [`State::is_plain`]); past it they are all forgotten,
/// which costs nothing but a wait for the next identical requests.
const PLAIN_KEYS: usize = 4096;
/// How long a key is believed plain after its last answer said so, in milliseconds.
const PLAIN_FOR: u64 = 30_000;

/// An entry's slab index with the generation it had, so that a late answer for an entry that
/// has since been evicted (and its slot reused) is not applied to the newcomer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EntryId {
    ix: u32,
    generation: u32,
}

/// What an entry stands for.
pub(crate) enum Subject {
    /// A token registered by auto-auth: makes requests cacheable, is never renewed here.
    AutoAuth { token: SecretToken },
    /// A token created through the cache, renewed with itself.
    Token {
        token: SecretToken,
        accessor: Box<str>,
    },
    /// A lease created through the cache, renewed with its owner's token.
    Lease { lease_id: Box<str> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Renew,
    End,
}

struct Entry {
    subject: Subject,
    /// Unused (zero) for auto-auth tokens, which answer no request.
    key: CacheKey,
    response: Option<Stored>,
    /// When the response was stored.
    stored: u64,
    /// Interned: entries for the same route share one copy.
    request_path: Arc<str>,
    namespace: Arc<str>,
    parent: u32,
    first_child: u32,
    next_sibling: u32,
    prev_sibling: u32,
    lru_prev: u32,
    lru_next: u32,
    /// When the lease or token ends, as last reported by Vault.
    expires: u64,
    grace: u64,
    /// When `action` is due; `NEVER` while a renewal is in flight or nothing is planned.
    due: u64,
    last_used: u64,
    action: Action,
    attempt: u8,
    renewing: bool,
}

impl Entry {
    fn token(&self) -> Option<&SecretToken> {
        match &self.subject {
            Subject::AutoAuth { token } | Subject::Token { token, .. } => Some(token),
            Subject::Lease { .. } => None,
        }
    }

    fn accessor(&self) -> Option<&str> {
        match &self.subject {
            Subject::Token { accessor, .. } if !accessor.is_empty() => Some(accessor),
            _ => None,
        }
    }

    fn lease_id(&self) -> Option<&str> {
        match &self.subject {
            Subject::Lease { lease_id } => Some(lease_id),
            _ => None,
        }
    }

    fn is_auto_auth(&self) -> bool {
        matches!(self.subject, Subject::AutoAuth { .. })
    }

    /// The moment the entry stops being served: the end of its lease less the grace period.
    fn serve_until(&self) -> u64 {
        self.expires.saturating_sub(self.grace)
    }
}

struct Slot {
    generation: u32,
    entry: Option<Entry>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Due {
    at: u64,
    ix: u32,
    generation: u32,
}

/// A cacheable response, checked and ready to become an entry.
pub(crate) struct NewEntry<'a> {
    pub(crate) subject: Subject,
    pub(crate) key: CacheKey,
    pub(crate) response: Pending,
    pub(crate) request_path: &'a str,
    pub(crate) namespace: String,
    /// The token the request was made with: the owner of the new entry.
    pub(crate) request_token: &'a str,
    /// A token created without a parent (`create-orphan`): it stands on its own, at the top.
    pub(crate) orphan: bool,
    pub(crate) ttl: u64,
}

/// One renewal to perform, with copies of what it needs so the lock is not held meanwhile.
pub(crate) struct Job {
    pub(crate) id: EntryId,
    pub(crate) namespace: Arc<str>,
    pub(crate) work: Work,
}

pub(crate) enum Work {
    Token(SecretToken),
    Lease {
        token: SecretToken,
        lease_id: Box<str>,
    },
}

/// The settings the state needs, in milliseconds.
pub(crate) struct Timing {
    pub(crate) max_entries: usize,
    pub(crate) grace_min: f64,
    pub(crate) grace_max: f64,
    pub(crate) backoff_initial: Duration,
    pub(crate) backoff_max: Duration,
    pub(crate) idle_timeout: Option<u64>,
}

#[derive(Default)]
struct Counters {
    hits: u64,
    misses: u64,
    stored: u64,
    evictions: u64,
    renewals: u64,
    renewal_failures: u64,
    renewal_rejections: u64,
}

pub(crate) struct State {
    slots: Vec<Slot>,
    free: Vec<u32>,
    by_key: HashTable<u32>,
    by_token: HashTable<u32>,
    by_accessor: HashTable<u32>,
    by_lease: HashTable<u32>,
    hasher: RandomState,
    lru_head: u32,
    lru_tail: u32,
    schedule: BinaryHeap<Reverse<Due>>,
    /// When the scheduler will wake up on its own; an earlier item must wake it.
    scheduler_wake: u64,
    wake_needed: bool,
    current_auto_auth: u32,
    namespaces: HashSet<Arc<str>>,
    /// Request paths of entries, each stored once.
    paths: Paths,
    /// Header sets of stored responses, each stored once.
    heads: Heads,
    cached: usize,
    tokens: usize,
    leases: usize,
    renewing: usize,
    counters: Counters,
    timing: Timing,
    /// Requests being filled upstream right now, for de-duplication; keyed like `by_key`, by
    /// the digest itself, which needs no further hashing.
    inflight: HashTable<(CacheKey, Arc<InFlight>)>,
    /// Keys whose last answer had nothing to cache, with when that stops being believed.
    plain: HashTable<(CacheKey, u64)>,
}

impl State {
    pub(crate) fn new(timing: Timing) -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            by_key: HashTable::new(),
            by_token: HashTable::new(),
            by_accessor: HashTable::new(),
            by_lease: HashTable::new(),
            hasher: RandomState::new(),
            lru_head: NIL,
            lru_tail: NIL,
            schedule: BinaryHeap::new(),
            scheduler_wake: NEVER,
            wake_needed: false,
            current_auto_auth: NIL,
            namespaces: HashSet::new(),
            paths: Paths::default(),
            heads: Heads::default(),
            cached: 0,
            tokens: 0,
            leases: 0,
            renewing: 0,
            counters: Counters::default(),
            timing,
            inflight: HashTable::new(),
            plain: HashTable::new(),
        }
    }

    /// Whether requests made with `token` may be cached: it is the auto-auth token (current or
    /// retired but still alive) or a token the cache stored.
    pub(crate) fn is_managed(&self, token: &str) -> bool {
        self.find_token(token).is_some()
    }

    /// The response stored under `key` and when it was stored, unless it is due to end;
    /// counts a hit.
    pub(crate) fn hit(&mut self, key: &CacheKey, now: u64) -> Option<(Stored, u64)> {
        let ix = self.find_key(key)?;
        let entry = self.entry(ix)?;
        if now >= entry.serve_until() {
            self.evict_tree(ix, "expired");
            return None;
        }

        self.touch(ix);
        let entry = self.entry_mut(ix)?;
        entry.last_used = now;
        let response = entry
            .response
            .clone()
            .map(|response| (response, entry.stored));
        self.counters.hits += 1;
        response
    }

    /// The fill in progress for `key`, if any.
    pub(crate) fn flight(&self, key: &CacheKey) -> Option<&Arc<InFlight>> {
        let found = self
            .inflight
            .find(key.short_hash(), |(known, _)| known == key);
        found.map(|(_, flight)| flight)
    }

    /// Records that `flight` fills `key`.
    pub(crate) fn start_flight(&mut self, key: CacheKey, flight: Arc<InFlight>) {
        let rehash = |(known, _): &(CacheKey, Arc<InFlight>)| known.short_hash();
        self.inflight
            .insert_unique(key.short_hash(), (key, flight), rehash);
    }

    /// Forgets the fill of `key`, unless another one took its place.
    pub(crate) fn end_flight(&mut self, key: &CacheKey, flight: &Arc<InFlight>) {
        let same = |(known, current): &(CacheKey, Arc<InFlight>)| {
            known == key && Arc::ptr_eq(current, flight)
        };
        if let Ok(found) = self.inflight.find_entry(key.short_hash(), same) {
            found.remove();
        }
    }

    /// Whether the last answer to `key`, less than [`PLAIN_FOR`] ago, had nothing the cache
    /// keeps (a plain read, a lease that cannot be renewed): identical requests then have no
    /// answer to wait for.
    pub(crate) fn is_plain(&self, key: &CacheKey, now: u64) -> bool {
        let found = self.plain.find(key.short_hash(), |(known, _)| known == key);
        found.is_some_and(|&(_, until)| now < until)
    }

    /// Records the outcome of a fill of `key` for [`State::is_plain`].
    pub(crate) fn note_fill(&mut self, key: &CacheKey, plain: bool, now: u64) {
        let hash = key.short_hash();
        let found = self.plain.find_entry(hash, |(known, _)| known == key);
        match (found, plain) {
            (Ok(mut entry), true) => entry.get_mut().1 = now.saturating_add(PLAIN_FOR),
            (Ok(entry), false) => {
                entry.remove();
            }
            (Err(_), true) => {
                if self.plain.len() >= PLAIN_KEYS {
                    self.plain.clear();
                }
                let until = now.saturating_add(PLAIN_FOR);
                let rehash = |(known, _): &(CacheKey, u64)| known.short_hash();
                self.plain.insert_unique(hash, (*key, until), rehash);
            }
            (Err(_), false) => {}
        }
    }

    pub(crate) fn count_miss(&mut self) {
        self.counters.misses += 1;
    }

    /// Stores a new entry and plans its first renewal.
    pub(crate) fn insert(&mut self, new: NewEntry<'_>, now: u64) -> Result<EntryId, NotCached> {
        if self.timing.max_entries == 0 {
            return Err(NotCached::NoRoom);
        }
        let owner = self
            .find_token(new.request_token)
            .ok_or(NotCached::TokenNotManaged)?;
        let parent = if new.orphan { NIL } else { owner };
        let duplicate = self.find_key(&new.key).is_some()
            || match &new.subject {
                Subject::Token { token, .. } | Subject::AutoAuth { token } => {
                    self.find_token(token.expose()).is_some()
                }
                Subject::Lease { lease_id } => self.find_lease(lease_id).is_some(),
            };
        if duplicate {
            return Err(NotCached::AlreadyCached);
        }

        let grace = lifetime::grace(new.ttl, self.timing.grace_min, self.timing.grace_max);
        let namespace = self.intern(new.namespace);
        let request_path = self.intern_path(new.request_path);
        let response = new.response.store(&mut self.heads);
        let is_token = matches!(new.subject, Subject::Token { .. });
        let ix = self.alloc(Entry {
            subject: new.subject,
            key: new.key,
            response: Some(response),
            stored: now,
            request_path,
            namespace,
            parent: NIL,
            first_child: NIL,
            next_sibling: NIL,
            prev_sibling: NIL,
            lru_prev: NIL,
            lru_next: NIL,
            expires: now.saturating_add(new.ttl),
            grace,
            due: NEVER,
            last_used: now,
            action: Action::Renew,
            attempt: 0,
            renewing: false,
        });

        // Indexes, tree, recency.
        self.index(ix);
        self.link_child(parent, ix);
        self.lru_push_front(ix);
        self.touch(ix);
        self.cached += 1;
        if is_token {
            self.tokens += 1;
        } else {
            self.leases += 1;
        }
        self.counters.stored += 1;
        self.plan(ix, now, new.ttl, grace);

        // Make room: the least recently used entries go, with whatever hangs under them.
        while self.cached > self.timing.max_entries && self.lru_tail != NIL {
            self.evict_tree(self.lru_tail, "over capacity");
        }
        self.id_of(ix).ok_or(NotCached::NoRoom)
    }

    /// Registers `token` as the auto-auth token; the previous one is retired and ends, with
    /// everything under it, when its own TTL runs out.
    pub(crate) fn register_auto_auth(&mut self, token: SecretToken, ttl: u64, now: u64) {
        if let Some(ix) = self.find_token(token.expose()) {
            if self.entry(ix).is_some_and(Entry::is_auto_auth) {
                self.retire_current_except(ix);
                self.current_auto_auth = ix;
                self.set_auto_auth_expiry(ix, ttl, now);
                return;
            }
            // A cached token taken over by auto-auth: auto-auth renews it from now on.
            self.evict_tree(ix, "taken over by auto-auth");
        }

        self.retire_current_except(NIL);
        let namespace = self.intern(ROOT_NAMESPACE.to_owned());
        let request_path = self.intern_path("");
        let ix = self.alloc(Entry {
            subject: Subject::AutoAuth { token },
            key: CacheKey::ZERO,
            response: None,
            stored: now,
            request_path,
            namespace,
            parent: NIL,
            first_child: NIL,
            next_sibling: NIL,
            prev_sibling: NIL,
            lru_prev: NIL,
            lru_next: NIL,
            expires: NEVER,
            grace: 0,
            due: NEVER,
            last_used: now,
            action: Action::End,
            attempt: 0,
            renewing: false,
        });
        self.index(ix);
        self.current_auto_auth = ix;
        self.set_auto_auth_expiry(ix, ttl, now);
    }

    /// Records that auto-auth renewed `token` for `ttl` ms more.
    pub(crate) fn auto_auth_renewed(&mut self, token: &SecretToken, ttl: u64, now: u64) {
        if let Some(ix) = self.find_token(token.expose())
            && self.entry(ix).is_some_and(Entry::is_auto_auth)
        {
            self.set_auto_auth_expiry(ix, ttl, now);
        }
    }

    /// Drops what a successful revocation made invalid; returns how many cached entries went.
    pub(crate) fn revoke(&mut self, revocation: &Revocation) -> usize {
        let before = self.counters.evictions;
        match revocation {
            Revocation::Token(token) => {
                if let Some(ix) = self.find_token(token.expose()) {
                    self.evict_tree(ix, "token revoked");
                }
            }
            Revocation::TokenAccessor(accessor) => {
                if let Some(ix) = self.find_accessor(accessor) {
                    self.evict_tree(ix, "token revoked");
                }
            }
            Revocation::TokenOrphan(token) => {
                if let Some(ix) = self.find_token(token.expose()) {
                    self.evict_orphaning(ix);
                }
            }
            Revocation::Lease(lease_id) => {
                if let Some(ix) = self.find_lease(lease_id) {
                    self.evict_tree(ix, "lease revoked");
                }
            }
            Revocation::LeasePrefix { prefix, namespace } => {
                let matching = self.matching(|entry| {
                    entry
                        .lease_id()
                        .is_some_and(|id| id.starts_with(prefix.as_str()))
                        && *entry.namespace == **namespace
                });
                for ix in matching {
                    self.evict_tree(ix, "lease revoked by prefix");
                }
            }
        }
        (self.counters.evictions - before) as usize
    }

    /// Drops what a cache-clear request names; returns how many cached entries went.
    ///
    /// The current auto-auth token is never dropped, only what hangs under it: it stays
    /// registered, so caching goes on at once.
    pub(crate) fn clear(&mut self, request: &ClearRequest) -> usize {
        let before = self.counters.evictions;
        let targets = match request {
            ClearRequest::RequestPath { prefix, namespace } => self.matching(|entry| {
                entry.response.is_some()
                    && *entry.namespace == **namespace
                    && entry.request_path.starts_with(prefix.as_str())
            }),
            ClearRequest::Token(token) => self.find_token(token.expose()).into_iter().collect(),
            ClearRequest::TokenAccessor(accessor) => {
                self.find_accessor(accessor).into_iter().collect()
            }
            ClearRequest::Lease(lease_id) => self.find_lease(lease_id).into_iter().collect(),
            ClearRequest::All => self.matching(|entry| entry.parent == NIL),
        };

        for ix in targets {
            if ix == self.current_auto_auth {
                self.evict_children(ix, "cleared");
            } else {
                self.evict_tree(ix, "cleared");
            }
        }
        (self.counters.evictions - before) as usize
    }

    /// Takes up to `max_jobs` renewals that are due at `now`, ending on the way the entries
    /// whose end is due. Returns the jobs and when the next item falls due.
    pub(crate) fn take_due(&mut self, now: u64, max_jobs: usize) -> (Vec<Job>, Option<u64>) {
        let mut jobs = Vec::new();
        let mut handled = 0;
        let next = loop {
            let Some(&Reverse(due)) = self.schedule.peek() else {
                break None;
            };
            // A bounded pass keeps the lock short for the requests waiting on it, even when
            // many leases end in the same millisecond; the scheduler comes straight back.
            if due.at > now || jobs.len() >= max_jobs || handled == ITEMS_PER_PASS {
                break Some(due.at);
            }
            self.schedule.pop();
            handled += 1;

            let ix = due.ix;
            let generation = self.slot_generation(ix);
            let Some(entry) = self.entry_mut(ix) else {
                continue;
            };
            if entry.due != due.at || generation != due.generation {
                continue;
            }
            entry.due = NEVER;

            if entry.action == Action::End {
                self.end(ix);
                continue;
            }
            if let Some(job) = self.start_renewal(ix, now) {
                jobs.push(job);
            }
        };

        self.compact_schedule();
        self.scheduler_wake = match next {
            Some(at) if jobs.len() < max_jobs => at,
            _ => NEVER,
        };
        self.wake_needed = false;
        (jobs, next)
    }

    /// Applies the answer of a renewal started by [`State::take_due`].
    pub(crate) fn apply(&mut self, id: EntryId, renewal: Renewal, now: u64) {
        let Some(ix) = self.live(id) else {
            // Evicted while Vault was answering: nothing to renew any more.
            return;
        };
        self.renewing = self.renewing.saturating_sub(1);
        let timing = &self.timing;
        let (grace_min, grace_max) = (timing.grace_min, timing.grace_max);
        let (backoff_initial, backoff_max) = (timing.backoff_initial, timing.backoff_max);
        let Some(entry) = self.entry_mut(ix) else {
            return;
        };
        entry.renewing = false;

        match renewal {
            Renewal::Extended { ttl, renewable } => {
                let ttl = millis(ttl);
                let new_expires = now.saturating_add(ttl);
                let extended = new_expires > entry.expires;
                if ttl > entry.expires.saturating_sub(now) {
                    entry.grace = lifetime::grace(ttl, grace_min, grace_max);
                }
                entry.expires = new_expires;
                entry.attempt = 0;
                let grace = entry.grace;
                self.counters.renewals += 1;
                debug!(entry = %self.describe(ix), ttl_ms = ttl, extended, "renewed");

                if renewable && extended {
                    self.plan(ix, now, ttl, grace);
                } else {
                    // Max TTL reached (or no longer renewable): serve it until its grace period.
                    self.schedule_at(ix, new_expires.saturating_sub(grace).max(now), Action::End);
                }
            }
            Renewal::Rejected => {
                self.counters.renewal_rejections += 1;
                debug!(entry = %self.describe(ix), "renewal rejected");
                self.evict_tree(ix, "renewal rejected");
            }
            Renewal::Failed => {
                let wait = lifetime::backoff(entry.attempt, backoff_initial, backoff_max);
                entry.attempt = entry.attempt.saturating_add(1);
                let end = entry.serve_until();
                self.counters.renewal_failures += 1;
                tracing::warn!(entry = %self.describe(ix), retry_in_ms = wait, "renewal failed");

                if now.saturating_add(wait) >= end {
                    self.schedule_at(ix, end.max(now), Action::End);
                } else {
                    self.schedule_at(ix, now + wait, Action::Renew);
                }
            }
        }
    }

    /// Puts renewals that were in flight back on the schedule (the scheduler stopped).
    pub(crate) fn abort_renewals(&mut self, now: u64) {
        let interrupted = self.matching(|entry| entry.renewing);
        for ix in interrupted {
            if let Some(entry) = self.entry_mut(ix) {
                entry.renewing = false;
            }
            self.schedule_at(ix, now, Action::Renew);
        }
        self.renewing = 0;
        self.scheduler_wake = NEVER;
    }

    /// Whether an item was scheduled before the scheduler's own wake-up since it last looked.
    pub(crate) fn take_wake_needed(&mut self) -> bool {
        std::mem::take(&mut self.wake_needed)
    }

    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats {
            entries: self.cached,
            tokens: self.tokens,
            leases: self.leases,
            auto_auth_tokens: self.by_token.len() - self.tokens,
            hits: self.counters.hits,
            misses: self.counters.misses,
            stored: self.counters.stored,
            evictions: self.counters.evictions,
            renewals: self.counters.renewals,
            renewal_failures: self.counters.renewal_failures,
            renewal_rejections: self.counters.renewal_rejections,
            renewals_in_flight: self.renewing,
            scheduled: self.schedule.len(),
        }
    }

    // ---- planning -------------------------------------------------------------------------

    /// Plans the next step of an entry that was just granted `remaining` ms.
    fn plan(&mut self, ix: u32, now: u64, remaining: u64, grace: u64) {
        match lifetime::plan(remaining, grace) {
            Next::RenewIn(wait) => self.schedule_at(ix, now + wait, Action::Renew),
            Next::EndIn(wait) => self.schedule_at(ix, now + wait, Action::End),
        }
    }

    fn schedule_at(&mut self, ix: u32, at: u64, action: Action) {
        let generation = self.slot_generation(ix);
        let Some(entry) = self.entry_mut(ix) else {
            return;
        };
        entry.due = at;
        entry.action = action;
        self.schedule.push(Reverse(Due { at, ix, generation }));
        if at < self.scheduler_wake {
            self.scheduler_wake = at;
            self.wake_needed = true;
        }
    }

    fn set_auto_auth_expiry(&mut self, ix: u32, ttl: u64, now: u64) {
        // A TTL of zero is a token that does not expire (a root token).
        let expires = if ttl == 0 {
            NEVER
        } else {
            now.saturating_add(ttl)
        };
        if let Some(entry) = self.entry_mut(ix) {
            entry.expires = expires;
            entry.due = NEVER;
        }
        if expires != NEVER {
            self.schedule_at(ix, expires, Action::End);
        }
    }

    /// The current auto-auth token stops being current. With nothing under it, it goes now;
    /// otherwise it stays (still a managed token) until its own end.
    fn retire_current_except(&mut self, keep: u32) {
        let old = self.current_auto_auth;
        if old == NIL || old == keep {
            return;
        }
        self.current_auto_auth = NIL;
        if self
            .entry(old)
            .is_some_and(|entry| entry.first_child == NIL)
        {
            self.evict_tree(old, "auto-auth token replaced");
        }
    }

    fn start_renewal(&mut self, ix: u32, now: u64) -> Option<Job> {
        let idle_timeout = self.timing.idle_timeout;
        let entry = self.entry(ix)?;

        // Unused for longer than allowed: let it run out instead of keeping it alive.
        if idle_timeout.is_some_and(|idle| now.saturating_sub(entry.last_used) >= idle) {
            let end = entry.serve_until().max(now);
            debug!(entry = %self.describe(ix), "idle, no longer renewed");
            self.schedule_at(ix, end, Action::End);
            return None;
        }

        let work = match &entry.subject {
            Subject::Token { token, .. } => Work::Token(token.clone()),
            Subject::Lease { lease_id } => {
                let owner = self.entry(entry.parent).and_then(Entry::token);
                let Some(token) = owner else {
                    self.evict_tree(ix, "owner gone");
                    return None;
                };
                Work::Lease {
                    token: token.clone(),
                    lease_id: lease_id.clone(),
                }
            }
            Subject::AutoAuth { .. } => return None,
        };
        let job = Job {
            id: self.id_of(ix)?,
            namespace: entry.namespace.clone(),
            work,
        };

        if let Some(entry) = self.entry_mut(ix) {
            entry.renewing = true;
        }
        self.renewing += 1;
        Some(job)
    }

    /// An entry reached its end: a cached entry goes with everything under it; the current
    /// auto-auth token loses what hangs under it but stays registered (auto-auth, not the
    /// cache, decides when it is gone).
    fn end(&mut self, ix: u32) {
        if ix == self.current_auto_auth {
            self.evict_children(ix, "auto-auth token expired");
        } else {
            self.evict_tree(ix, "expired");
        }
    }

    /// Drops stale schedule items once they outnumber the live ones.
    fn compact_schedule(&mut self) {
        let live = self.slots.len() - self.free.len();
        if self.schedule.len() <= 2 * live + 1024 {
            return;
        }
        let slots = &self.slots;
        self.schedule.retain(|Reverse(due)| {
            slots.get(due.ix as usize).is_some_and(|slot| {
                slot.generation == due.generation
                    && slot.entry.as_ref().is_some_and(|entry| entry.due == due.at)
            })
        });
    }

    // ---- eviction -------------------------------------------------------------------------

    /// Removes `ix` and everything created under it; returns the number of cached entries.
    fn evict_tree(&mut self, ix: u32, reason: &'static str) -> usize {
        let doomed = self.subtree(ix);

        // Children first, so each removal unlinks from a parent that is still there.
        let mut removed = 0;
        for &victim in doomed.iter().rev() {
            if self.remove(victim, reason) {
                removed += 1;
            }
        }
        removed
    }

    fn evict_children(&mut self, ix: u32, reason: &'static str) {
        let mut child = self.entry(ix).map_or(NIL, |entry| entry.first_child);
        while child != NIL {
            let next = self.entry(child).map_or(NIL, |entry| entry.next_sibling);
            self.evict_tree(child, reason);
            child = next;
        }
    }

    /// revoke-orphan: the token and its leases go; its child tokens stay, as top-level tokens.
    fn evict_orphaning(&mut self, ix: u32) {
        let mut child = self.entry(ix).map_or(NIL, |entry| entry.first_child);
        while child != NIL {
            let next = self.entry(child).map_or(NIL, |entry| entry.next_sibling);
            let is_lease = self
                .entry(child)
                .is_some_and(|entry| entry.lease_id().is_some());
            if is_lease {
                self.evict_tree(child, "owner revoked");
            } else {
                self.unlink_child(child);
            }
            child = next;
        }
        self.remove(ix, "token revoked");
    }

    /// `ix` followed by everything under it, breadth-first.
    fn subtree(&self, ix: u32) -> Vec<u32> {
        let mut found = vec![ix];
        let mut next = 0;
        while next < found.len() {
            let mut child = self
                .entry(found[next])
                .map_or(NIL, |entry| entry.first_child);
            while child != NIL {
                found.push(child);
                child = self.entry(child).map_or(NIL, |entry| entry.next_sibling);
            }
            next += 1;
        }
        found
    }

    /// Unlinks and frees one entry; returns whether it was a cached response.
    fn remove(&mut self, ix: u32, reason: &'static str) -> bool {
        if self.entry(ix).is_none() {
            return false;
        }
        self.unlink_child(ix);
        self.unindex(ix);
        let cached = self.entry(ix).is_some_and(|entry| entry.response.is_some());
        if cached {
            self.lru_unlink(ix);
        }
        if ix == self.current_auto_auth {
            self.current_auto_auth = NIL;
        }

        let Some(slot) = self.slots.get_mut(ix as usize) else {
            return false;
        };
        let Some(entry) = slot.entry.take() else {
            return false;
        };
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(ix);
        if entry.renewing {
            self.renewing = self.renewing.saturating_sub(1);
        }

        if cached {
            self.cached -= 1;
            self.counters.evictions += 1;
            match entry.subject {
                Subject::Token { .. } => self.tokens -= 1,
                Subject::Lease { .. } => self.leases -= 1,
                Subject::AutoAuth { .. } => {}
            }
        }
        debug!(entry = %describe(&entry), reason, "evicted");
        cached
    }

    // ---- slab -----------------------------------------------------------------------------

    fn alloc(&mut self, entry: Entry) -> u32 {
        if let Some(ix) = self.free.pop()
            && let Some(slot) = self.slots.get_mut(ix as usize)
        {
            slot.entry = Some(entry);
            return ix;
        }
        self.slots.push(Slot {
            generation: 0,
            entry: Some(entry),
        });
        (self.slots.len() - 1) as u32
    }

    fn entry(&self, ix: u32) -> Option<&Entry> {
        self.slots.get(ix as usize)?.entry.as_ref()
    }

    fn entry_mut(&mut self, ix: u32) -> Option<&mut Entry> {
        self.slots.get_mut(ix as usize)?.entry.as_mut()
    }

    fn slot_generation(&self, ix: u32) -> u32 {
        self.slots
            .get(ix as usize)
            .map_or(0, |slot| slot.generation)
    }

    fn id_of(&self, ix: u32) -> Option<EntryId> {
        self.entry(ix)?;
        Some(EntryId {
            ix,
            generation: self.slot_generation(ix),
        })
    }

    fn live(&self, id: EntryId) -> Option<u32> {
        (self.entry(id.ix).is_some() && self.slot_generation(id.ix) == id.generation)
            .then_some(id.ix)
    }

    fn matching(&self, mut keep: impl FnMut(&Entry) -> bool) -> Vec<u32> {
        let live = self.slots.iter().enumerate();
        live.filter(|(_, slot)| slot.entry.as_ref().is_some_and(&mut keep))
            .map(|(ix, _)| ix as u32)
            .collect()
    }

    fn intern(&mut self, namespace: String) -> Arc<str> {
        if let Some(known) = self.namespaces.get(namespace.as_str()) {
            return known.clone();
        }
        let shared: Arc<str> = Arc::from(namespace);
        self.namespaces.insert(shared.clone());
        shared
    }

    fn intern_path(&mut self, path: &str) -> Arc<str> {
        self.paths.intern(path)
    }

    fn describe(&self, ix: u32) -> String {
        self.entry(ix).map(describe).unwrap_or_default()
    }

    // ---- indexes --------------------------------------------------------------------------

    fn find_key(&self, key: &CacheKey) -> Option<u32> {
        let slots = &self.slots;
        let found = self.by_key.find(key.short_hash(), |&ix| {
            entry_in(slots, ix).is_some_and(|entry| entry.key == *key)
        });
        found.copied()
    }

    fn find_token(&self, token: &str) -> Option<u32> {
        let slots = &self.slots;
        let hash = self.hasher.hash_one(token);
        let found = self.by_token.find(hash, |&ix| {
            entry_in(slots, ix)
                .and_then(Entry::token)
                .is_some_and(|t| t.expose() == token)
        });
        found.copied()
    }

    fn find_accessor(&self, accessor: &str) -> Option<u32> {
        let slots = &self.slots;
        let hash = self.hasher.hash_one(accessor);
        let found = self.by_accessor.find(hash, |&ix| {
            entry_in(slots, ix).and_then(Entry::accessor) == Some(accessor)
        });
        found.copied()
    }

    fn find_lease(&self, lease_id: &str) -> Option<u32> {
        let slots = &self.slots;
        let hash = self.hasher.hash_one(lease_id);
        let found = self.by_lease.find(hash, |&ix| {
            entry_in(slots, ix).and_then(Entry::lease_id) == Some(lease_id)
        });
        found.copied()
    }

    fn index(&mut self, ix: u32) {
        let Some(entry) = entry_in(&self.slots, ix) else {
            return;
        };
        let slots = &self.slots;
        let hasher = &self.hasher;

        if entry.response.is_some() {
            let rehash = |&i: &u32| entry_in(slots, i).map_or(0, |e| e.key.short_hash());
            self.by_key
                .insert_unique(entry.key.short_hash(), ix, rehash);
        }
        if let Some(token) = entry.token() {
            let rehash = |&i: &u32| {
                let token = entry_in(slots, i).and_then(Entry::token);
                token.map_or(0, |t| hasher.hash_one(t.expose()))
            };
            self.by_token
                .insert_unique(hasher.hash_one(token.expose()), ix, rehash);
        }
        if let Some(accessor) = entry.accessor() {
            let rehash = |&i: &u32| {
                let accessor = entry_in(slots, i).and_then(Entry::accessor);
                accessor.map_or(0, |a| hasher.hash_one(a))
            };
            self.by_accessor
                .insert_unique(hasher.hash_one(accessor), ix, rehash);
        }
        if let Some(lease_id) = entry.lease_id() {
            let rehash = |&i: &u32| {
                let lease_id = entry_in(slots, i).and_then(Entry::lease_id);
                lease_id.map_or(0, |l| hasher.hash_one(l))
            };
            self.by_lease
                .insert_unique(hasher.hash_one(lease_id), ix, rehash);
        }
    }

    fn unindex(&mut self, ix: u32) {
        let Some(entry) = entry_in(&self.slots, ix) else {
            return;
        };
        let is_ix = |&i: &u32| i == ix;

        if entry.response.is_some()
            && let Ok(found) = self.by_key.find_entry(entry.key.short_hash(), is_ix)
        {
            found.remove();
        }
        if let Some(token) = entry.token() {
            let hash = self.hasher.hash_one(token.expose());
            if let Ok(found) = self.by_token.find_entry(hash, is_ix) {
                found.remove();
            }
        }
        if let Some(accessor) = entry.accessor() {
            let hash = self.hasher.hash_one(accessor);
            if let Ok(found) = self.by_accessor.find_entry(hash, is_ix) {
                found.remove();
            }
        }
        if let Some(lease_id) = entry.lease_id() {
            let hash = self.hasher.hash_one(lease_id);
            if let Ok(found) = self.by_lease.find_entry(hash, is_ix) {
                found.remove();
            }
        }
    }

    // ---- tree -----------------------------------------------------------------------------

    fn link_child(&mut self, parent: u32, child: u32) {
        if parent == NIL {
            return;
        }
        let Some(first) = self.entry(parent).map(|entry| entry.first_child) else {
            return;
        };
        if let Some(entry) = self.entry_mut(child) {
            entry.parent = parent;
            entry.prev_sibling = NIL;
            entry.next_sibling = first;
        }
        if let Some(entry) = self.entry_mut(first) {
            entry.prev_sibling = child;
        }
        if let Some(entry) = self.entry_mut(parent) {
            entry.first_child = child;
        }
    }

    fn unlink_child(&mut self, child: u32) {
        let Some(entry) = self.entry_mut(child) else {
            return;
        };
        let (parent, prev, next) = (entry.parent, entry.prev_sibling, entry.next_sibling);
        entry.parent = NIL;
        entry.prev_sibling = NIL;
        entry.next_sibling = NIL;

        if let Some(entry) = self.entry_mut(prev) {
            entry.next_sibling = next;
        } else if let Some(entry) = self.entry_mut(parent) {
            entry.first_child = next;
        }
        if let Some(entry) = self.entry_mut(next) {
            entry.prev_sibling = prev;
        }
    }

    // ---- recency --------------------------------------------------------------------------

    /// Marks `ix` and its ancestors as just used, so a parent is never older than a child and
    /// the capacity bound takes leaves first.
    fn touch(&mut self, ix: u32) {
        let mut current = ix;
        while let Some(entry) = self.entry(current) {
            let parent = entry.parent;
            if entry.response.is_some() && self.lru_head != current {
                self.lru_unlink(current);
                self.lru_push_front(current);
            }
            current = parent;
        }
    }

    fn lru_push_front(&mut self, ix: u32) {
        let head = self.lru_head;
        if let Some(entry) = self.entry_mut(ix) {
            entry.lru_prev = NIL;
            entry.lru_next = head;
        }
        if let Some(entry) = self.entry_mut(head) {
            entry.lru_prev = ix;
        }
        self.lru_head = ix;
        if self.lru_tail == NIL {
            self.lru_tail = ix;
        }
    }

    fn lru_unlink(&mut self, ix: u32) {
        let Some(entry) = self.entry_mut(ix) else {
            return;
        };
        let (prev, next) = (entry.lru_prev, entry.lru_next);
        entry.lru_prev = NIL;
        entry.lru_next = NIL;

        match self.entry_mut(prev) {
            Some(entry) => entry.lru_next = next,
            None => self.lru_head = next,
        }
        match self.entry_mut(next) {
            Some(entry) => entry.lru_prev = prev,
            None => self.lru_tail = prev,
        }
    }
}

/// The request paths of entries, each stored once.
struct Paths {
    known: HashSet<Arc<str>>,
    /// When the set reaches this size, the paths no entry uses any more are dropped; then it
    /// doubles what is left, so that the sweep stays rare however many paths are live.
    tidy_at: usize,
}

impl Default for Paths {
    fn default() -> Self {
        Self {
            known: HashSet::new(),
            tidy_at: 256,
        }
    }
}

impl Paths {
    /// The shared copy of `path`.
    fn intern(&mut self, path: &str) -> Arc<str> {
        if let Some(known) = self.known.get(path) {
            return known.clone();
        }
        if self.known.len() >= self.tidy_at {
            self.known.retain(|known| Arc::strong_count(known) > 1);
            self.tidy_at = (2 * self.known.len()).max(256);
        }
        let shared: Arc<str> = Arc::from(path);
        self.known.insert(shared.clone());
        shared
    }
}

fn entry_in(slots: &[Slot], ix: u32) -> Option<&Entry> {
    slots.get(ix as usize)?.entry.as_ref()
}

/// A loggable name for an entry: never the token, only what identifies it without
/// granting anything.
fn describe(entry: &Entry) -> String {
    match &entry.subject {
        Subject::AutoAuth { .. } => "auto-auth token".to_owned(),
        Subject::Token { .. } => format!("token for {}", entry.request_path),
        Subject::Lease { lease_id } => format!("lease {lease_id}"),
    }
}

pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(NEVER)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fixed part of an entry, which every one of 100,000 entries pays. It holds the
    /// handle of the stored response (status, shared headers, body) inline: a separate
    /// allocation would cost more.
    #[test]
    fn entries_stay_compact() {
        assert!(
            size_of::<Slot>() <= 232,
            "slot is {} bytes",
            size_of::<Slot>()
        );
        assert_eq!(size_of::<Due>(), 16);
    }
}
