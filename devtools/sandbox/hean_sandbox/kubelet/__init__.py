"""The sandbox kubelet: runs pods as local processes (or fakes them, like KWOK)."""
