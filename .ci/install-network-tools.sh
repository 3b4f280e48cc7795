#!/usr/bin/env bash
# Installs what the virtual network tests need on a fresh Debian machine, idempotently: Open vSwitch
# (userspace datapath; the tests start their own ovsdb-server/ovs-vswitchd per simulated host, never the
# system service), iproute2 (ip netns, veth), ethtool (offloads off on veths) and ping. Then smoke-tests that
# network namespaces can be made here. Skips the install when every tool is already present.
set -euo pipefail
log() { echo "install-network-tools: $*" >&2; }

need=()
command -v ovs-vswitchd >/dev/null 2>&1 || [[ -x /usr/sbin/ovs-vswitchd ]] || need+=(openvswitch-switch)
command -v ovs-ofctl >/dev/null 2>&1 || need+=(openvswitch-common)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v ethtool >/dev/null 2>&1 || [[ -x /usr/sbin/ethtool ]] || need+=(ethtool)
command -v ping >/dev/null 2>&1 || need+=(iputils-ping)
if ((${#need[@]})); then
  log "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # the package's service start fails without systemd; the tests start their own daemons, so that is fine
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
[[ -f /usr/share/openvswitch/vswitch.ovsschema ]] || { log "the Open vSwitch schema is missing"; exit 1; }

# smoke: a namespace can be created and removed (the tests need root and CAP_NET_ADMIN)
ns="cfci$$"
ip netns add "$ns" && ip netns del "$ns" || { log "cannot create network namespaces here"; exit 1; }
log "ok ($(ovs-vswitchd --version | head -1))"
