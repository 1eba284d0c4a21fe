"""The sans-IO core of one node: frames in, frames, notes and actions out; no clock, no IO.

  node.py         the coordinator: feeds every input to the parts below, runs the policy
  agenda.py       what the next step owes: a heartbeat to send, failbacks, announcements
  frames.py       this node's frames: numbered and signed out, verified and judged in
  session.py      which of the peer's heartbeats prove it alive now (challenge and answer)
  membership.py   links and the peer: up, late, dead, from heartbeats and ticks
  peer.py         the peer as this node knows it: its report, its death, its partition
  ownership.py    who should run each group: the assignments and the seam that changes them
  groups.py       the groups' local states: one transition table
  underway.py     probes and actions under way on the groups, with their words for the log
  eligibility.py  whether this node may run each group: the facts and the verdicts
  failover.py     the peer's death and return, and the gates of taking its groups
  sideband.py     the node's inputs besides heartbeats: fence agent, witness, probes, mailbox
  fencing.py      fencing of the peer, as a machine
  witness.py      this node's side of the witness: asks and leases
  lookout.py      look before taking: a dead peer's addresses heard free first
  stall.py        a daemon frozen or starved: judge nothing, start nothing for a while
  pill.py         the disk poison pill: written for the peer, found in our mailbox
  goodbye.py      the goodbye a guard says for its daemon
  notes.py        Note and Level, what the parts say for the log
  latest.py       the latest time any input carried, shared by the node and its parts
"""
