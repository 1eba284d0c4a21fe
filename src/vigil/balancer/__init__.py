"""The load balancer behind the floating address (LVS/ldirectord's and keepalived's
virtual_server job, on nftables):

- model.py: the virtual services, their real servers and checks, as configured;
- health.py, checks.py, prober.py, passive.py (nflog.py): a real server's health from its
  checks (rise/fall) and from the resets it sends;
- slots.py: which real server each slot of a service sends new connections to;
- nft.py (NAT) and nft_dr.py (direct routing): the tables made of those, and the smallest
  transaction from one to the next; director.py decides what they hold;
- apply.py (`nft -f`, `nft -j list`), wiring.py (`ip route get`), expire.py (`conntrack -D`),
  ctsync.py and ctsync_run.py (conntrackd): the IO;
- service.py and agent.py: the balancer as the daemon runs it.
"""
