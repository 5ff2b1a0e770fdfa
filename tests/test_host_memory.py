"""keep_freed_memory: glibc keeps freed blocks, so repeated step-sized allocations stop faulting."""
import platform
import subprocess
import sys
import textwrap

import pytest

from taskalign.train.host_memory import keep_freed_memory

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"

# A few training steps of a small 3D conv net (activations of a few MiB, allocated and freed every
# step); minor page faults per step before and after the setting, in a fresh interpreter so the
# test process's own heap does not matter.
PROBE = textwrap.dedent("""
    import resource, torch
    from taskalign.train.host_memory import keep_freed_memory

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv3d(3, 16, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv3d(16, 16, 3, padding=1), torch.nn.InstanceNorm3d(16))
    x = torch.randn(4, 3, 16, 48, 48)

    def faults_per_step(steps=6):
        net(x).square().mean().backward()          # settle
        start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(steps):
            net(x).square().mean().backward()
        return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start) / steps

    before = faults_per_step()
    applied = keep_freed_memory()
    print(before, faults_per_step(), applied)
""")



@pytest.mark.skipif(not GLIBC, reason="the setting is glibc's mallopt")
def test_freed_step_memory_is_reused_instead_of_faulted_in_again():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout.split()
    before, after, applied = float(out[0]), float(out[1]), out[2]
    assert applied == "True"
    assert before > 3000               # glibc defaults: freed activations go back to the kernel
    assert after < before / 4          # kept: the next step reuses them without faulting


@pytest.mark.skipif(not GLIBC, reason="the setting is glibc's mallopt")
def test_keep_freed_memory_is_idempotent():
    assert keep_freed_memory() and keep_freed_memory()


def test_keep_freed_memory_changes_nothing_off_linux(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    assert keep_freed_memory() is False
