package dev.kiln.graph;

/**
 * How the value of a node travels to the actors (and the driver) that read it.
 *
 * <p>Set per node with {@link Node#withTransport(Transport)}; the compiler resolves
 * {@link #AUTO} from where the writer and readers live and records the choice, with the
 * reason, in the plan.
 *
 * <p>The last four carry GPU edges: the value of a node whose method is declared to return
 * {@code dev.kiln.tensor.DeviceTensor}. Host values cannot use them, and GPU edges cannot use
 * {@link #IN_PROCESS}, {@link #SHARED_MEMORY} or {@link #AERON_UDP}. The compiler plans the GPU transports, their
 * channels are in {@code dev.kiln.transport.gpu}, and the executor runs them on simulated GPUs in CI; nothing
 * GPU-side has run on a GPU yet (see {@code docs/gpu.md}).
 */
public enum Transport {
    /** Let the compiler pick the fastest transport that connects writer and readers. */
    AUTO,
    /** Writer and readers in one JVM: slots hold object references, nothing is copied. */
    IN_PROCESS,
    /**
     * A file in the shared-memory directory ({@code /dev/shm} by default) that the writer's and the
     * readers' JVMs map: values are encoded into the slot once, tensors are read in place. AUTO picks it
     * when writer and readers live in different JVMs of one host; asking for it between actors of one
     * JVM is allowed (it then costs a copy per value, as it would across JVMs).
     */
    SHARED_MEMORY,
    /**
     * Aeron UDP (reliable, ordered, flow-controlled): the writer sends each reader its own copy of the
     * encoded value, which the reader reassembles straight into its preallocated slot; tensors are read
     * in place there. AUTO picks it when some reader lives on another host than the writer (hosts are
     * the names workers advertise when they join). Asking for it between JVMs of one host is allowed
     * (it then goes over loopback).
     */
    AERON_UDP,
    /**
     * Writer and every reader in one JVM on one GPU: the value is copied device to device into the
     * channel's device slots on a stream, ordered by an event. AUTO picks it when every reader shares
     * the writer's JVM and device.
     */
    GPU_SAME_DEVICE,
    /**
     * Some reader in another JVM of the writer's host, every participant on a GPU: each reader's
     * device slots are exported with {@code cudaIpcGetMemHandle} and the writer copies into them peer
     * to peer. AUTO picks it when all participants live on one host, some in another JVM, and every
     * reader in another JVM is on the writer's GPU or on one with peer access to it
     * ({@code Topology.PeerAccess}): the writer maps another device's memory only through peer access.
     */
    CUDA_IPC,
    /**
     * Readers on other GPUs of the writer's JVM, on other hosts, or in another JVM on a GPU without peer
     * access to the writer's: {@code ncclSend} by the writer, {@code ncclRecv} into each reader's device
     * slots, in a per-rank order the compiler fixes ({@code ExecutionPlan.NcclSchedule}) so that no pair
     * of ranks deadlocks. Each rank's GPU also holds NCCL's own buffers, which the plan budgets.
     */
    NCCL,
    /**
     * CPU staging: the writer copies device to host into pinned host slots, and each reader with a GPU
     * copies host to device into one device buffer before its call. AUTO picks it when the writer or a
     * reader has no GPU, when a device cannot hold the edge's receive slots (and, for NCCL, NCCL's buffers)
     * within {@code CompileOptions.gpuMemoryFraction}, or when NCCL cannot connect the participants; asking
     * for it forces it for that edge.
     */
    STAGED
}
