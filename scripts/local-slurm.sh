#!/usr/bin/env bash
# A single-node SLURM on this machine (loopback, one fake GPU), to try profiles/slurm or to test it.
#   sudo bash scripts/local-slurm.sh start    install if missing (Debian), configure, start, wait for idle
#   sudo bash scripts/local-slurm.sh stop     stop what `start` started, by PID
#   bash scripts/local-slurm.sh status
# Then: snakemake --workflow-profile profiles/slurm-local --config scale=smoke nora
# Daemons are started by hand (no systemd needed); state lives in the usual Debian paths.
set -euo pipefail
PIDS=(/run/slurmd.pid /run/slurmctld.pid /run/munge/munged.pid)

start() {
  [ "$(id -u)" = 0 ] || { echo "error: starting slurm needs root" >&2; exit 1; }
  if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null \
     || ! command -v munged >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      slurmctld slurmd slurm-client munge >/dev/null
  fi
  if sinfo -h >/dev/null 2>&1; then echo "slurm is already running"; return 0; fi
  local host cpus mem_mb
  host=$(hostname -s)
  cpus=$(nproc)
  # RealMemory must not exceed what slurmd detects (`slurmd -C`, which may see less than
  # /proc/meminfo inside a container); leave 2 GB to the system.
  local meminfo_mb detected_mb
  meminfo_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 ))
  detected_mb=$(slurmd -C 2>/dev/null | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
  mem_mb=$(( ${detected_mb:-$meminfo_mb} < meminfo_mb ? ${detected_mb:-$meminfo_mb} : meminfo_mb ))
  mem_mb=$(( mem_mb - 2048 ))
  mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge
  chown slurm:slurm /var/spool/slurmctld /var/log/slurm
  chown munge:munge /run/munge
  [ -s /etc/munge/munge.key ] || dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
  chown munge:munge /etc/munge/munge.key
  chmod 400 /etc/munge/munge.key
  cat > /etc/slurm/slurm.conf <<CONF
ClusterName=lorarepro-local
SlurmctldHost=${host}(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MinJobAge=600
ReturnToService=2
# Trust this file over what slurmd detects: a container may report a CPU topology or memory
# that differs from nproc/meminfo, which would otherwise leave the node INVALID or DRAINED.
SlurmdParameters=config_overrides
MpiDefault=none
GresTypes=gpu
NodeName=${host} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${mem_mb} Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
  # A GPU needs a device file; /dev/null stands in, so `--gpus=1` jobs schedule (no CUDA behind it).
  cat > /etc/slurm/gres.conf <<CONF
AutoDetect=off
NodeName=${host} Name=gpu File=/dev/null
CONF
  runuser -u munge -- /usr/sbin/munged
  /usr/sbin/slurmctld
  /usr/sbin/slurmd
  local state=""
  for _ in $(seq 1 120); do
    state=$(sinfo -h -N -o '%T' 2>/dev/null || true)
    case "$state" in
      idle*) break ;;
      drain*|inval*) scontrol update nodename="${host}" state=resume >/dev/null 2>&1 || true ;;
    esac
    sleep 1
  done
  if [[ "$state" != idle* ]]; then
    echo "error: the node did not become idle (state: '${state}')" >&2
    sinfo -N -o '%N %T %E' >&2 || true
    tail -n 30 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
    stop
    exit 1
  fi
  echo "slurm is up: $(sinfo -h -N -o '%N %T %G')"
}

stop() {
  for f in "${PIDS[@]}"; do
    if [ -s "$f" ]; then kill "$(cat "$f")" 2>/dev/null || true; fi
  done
  sleep 2
  # A stale pid file breaks a later apt-get remove (its prerm runs scancel).
  rm -f /run/slurmd.pid /run/slurmctld.pid
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) sinfo -N -o '%N %T %G %c %m' ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
