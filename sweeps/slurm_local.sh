#!/usr/bin/env bash
# A throwaway single-node SLURM on this machine, for trying and testing `hydra/launcher=slurm`.
#
#   eval "$(sweeps/slurm_local.sh up)"    # start munged, slurmctld, slurmd; prints `export SLURM_CONF=...`
#   python run.py -m hydra/launcher=slurm experiment=micro adapters=lora,none
#   sweeps/slurm_local.sh down            # cancel its jobs, stop the daemons it started (by PID)
#
# Needs root. Installs Debian's slurm-wlm and munge with apt-get when they are missing.
# No systemd: munged runs on a private socket and key, slurmctld and slurmd in the
# foreground (-D) as background processes; proctrack/linuxproc, task/none, no accounting
# (sacct does not work: reasonbridge asks scontrol for job states instead). State, spool,
# logs, PIDs and slurm.conf live in $SLURM_LOCAL_DIR (default /tmp/reasonbridge-slurm).
# Exit status 3: SLURM cannot be installed or started here (the tests skip on it).
set -euo pipefail

DIR=${SLURM_LOCAL_DIR:-/tmp/reasonbridge-slurm}
CTLD_PORT=${SLURM_LOCAL_PORT:-16817}
CONF=$DIR/slurm.conf
SBIN=/usr/sbin

say() { echo "slurm_local: $*" >&2; }
cannot() { say "cannot run SLURM here: $*"; exit 3; }

install_packages() {
    if [[ -x $SBIN/slurmctld && -x $SBIN/slurmd && -x $SBIN/munged ]] && command -v sbatch >/dev/null; then
        return
    fi
    [[ $(id -u) == 0 ]] || cannot "slurm-wlm/munge are not installed and installing them needs root"
    command -v apt-get >/dev/null || cannot "slurm-wlm/munge are not installed and there is no apt-get"
    say "installing slurm-wlm and munge with apt-get"
    local start=$SECONDS
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends slurm-wlm munge >"$DIR/apt.log" 2>&1 \
        || { apt-get update -q >>"$DIR/apt.log" 2>&1 && apt-get install -y -q --no-install-recommends slurm-wlm munge >>"$DIR/apt.log" 2>&1; } \
        || cannot "apt-get install slurm-wlm munge failed (see $DIR/apt.log)"
    say "installed in $((SECONDS - start)) s"
}

alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

write_conf() {
    local host cpus mem
    host=$(hostname -s)
    cpus=$(nproc)
    mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 9 / 10 ))
    cat >"$CONF" <<EOF
ClusterName=reasonbridge
SlurmctldHost=$host
SlurmctldPort=$CTLD_PORT
SlurmdPort=$((CTLD_PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$DIR/munge/munge.socket
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
SlurmctldTimeout=30
SlurmdTimeout=30
MinJobAge=300
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munge() {
    mkdir -p "$DIR/munge"
    chmod 700 "$DIR/munge"
    [[ -f $DIR/munge/munge.key ]] || dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
    chmod 400 "$DIR/munge/munge.key"
    # --force: munged refuses root otherwise; the socket, key and logs are private to $DIR
    $SBIN/munged --force --socket="$DIR/munge/munge.socket" --key-file="$DIR/munge/munge.key" \
        --pid-file="$DIR/munged.pid" --log-file="$DIR/munged.log" --seed-file="$DIR/munge/munged.seed" \
        || cannot "munged did not start (see $DIR/munged.log)"
}

up() {
    mkdir -p "$DIR"/{state,spool}
    install_packages
    if alive "$DIR/slurmctld.pid" && alive "$DIR/slurmd.pid"; then
        say "already running"
        echo "export SLURM_CONF=$CONF"
        return
    fi
    write_conf
    alive "$DIR/munged.pid" || start_munge
    export SLURM_CONF=$CONF
    # -D: foreground (no systemd); background it here and keep its PID in the pid file
    nohup $SBIN/slurmctld -D -i -f "$CONF" >>"$DIR/slurmctld.out" 2>&1 &
    echo $! >"$DIR/slurmctld.pid"
    nohup $SBIN/slurmd -D -f "$CONF" >>"$DIR/slurmd.out" 2>&1 &
    echo $! >"$DIR/slurmd.pid"
    for _ in $(seq 1 60); do
        if sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then
            say "up: $(sinfo -h -o '%P %D %t %c CPUs')"
            echo "export SLURM_CONF=$CONF"
            return
        fi
        alive "$DIR/slurmctld.pid" || { down >/dev/null 2>&1 || true; cannot "slurmctld exited (see $DIR/slurmctld.log)"; }
        alive "$DIR/slurmd.pid" || { down >/dev/null 2>&1 || true; cannot "slurmd exited (see $DIR/slurmd.log)"; }
        sleep 0.5
    done
    down >/dev/null 2>&1 || true
    cannot "the node did not become idle in 30 s (see $DIR/slurmctld.log, $DIR/slurmd.log)"
}

stop_pid() {  # stop the daemon whose PID file we wrote; wait for it to exit
    local file=$1
    alive "$file" || { rm -f "$file"; return 0; }
    local pid
    pid=$(cat "$file")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    rm -f "$file"
}

down() {
    export SLURM_CONF=$CONF
    if alive "$DIR/slurmctld.pid"; then
        local jobs
        jobs=$(squeue -h -o %A 2>/dev/null || true)
        if [[ -n $jobs ]]; then
            # shellcheck disable=SC2086
            scancel $jobs 2>/dev/null || true
            for _ in $(seq 1 100); do [[ -z $(squeue -h -o %A 2>/dev/null) ]] && break; sleep 0.1; done
        fi
    fi
    stop_pid "$DIR/slurmd.pid"
    stop_pid "$DIR/slurmctld.pid"
    stop_pid "$DIR/munged.pid"
    say "down"
}

case ${1:-} in
    up) up ;;
    down) down ;;
    *) echo "usage: $0 up|down   (state in \$SLURM_LOCAL_DIR, default /tmp/reasonbridge-slurm)" >&2; exit 2 ;;
esac
