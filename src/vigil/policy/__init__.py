"""Who should run each group, and what this node must do about it. Pure functions.

  decide.py    the View a decision reads, `decide` and the safety rule it keeps; merge
  requests.py  standby, takeover, move (`request` by name), failback: one-shot changes of
               assignments
  actions.py   Start, Stop, Recover, Probe: what a decision tells the node to do
"""

from vigil.policy.actions import Action, Probe, Recover, Start, Stop
from vigil.policy.decide import (Decision, LocalGroup, View, conflict_resolved, decide,
                                 initial_assignment, merge)
from vigil.policy.requests import RequestResult, failback, move, request, standby, takeover

__all__ = ["Action", "Decision", "LocalGroup", "Probe", "Recover", "RequestResult", "Start",
           "Stop", "View", "conflict_resolved", "decide", "failback", "initial_assignment",
           "merge", "move", "request", "standby", "takeover"]
