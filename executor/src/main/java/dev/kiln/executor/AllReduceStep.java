package dev.kiln.executor;

import dev.kiln.compiler.ExecutionPlan.CollectiveSpec;
import dev.kiln.cuda.MemcpyKind;
import dev.kiln.tensor.DType;
import dev.kiln.tensor.DeviceTensor;
import dev.kiln.transport.gpu.Communicator;
import dev.kiln.transport.gpu.DeviceOps;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

/**
 * One member's part of an all-reduce node, run by the member's graph loop for every execution: the sum of
 * every member's device tensor, into an output buffer of the member's own (one per collective, reused every
 * execution: consumers of the previous output are ordered before the next all-reduce on the actor's stream).
 *
 * <p>Before the data, the members all-reduce a 40-byte header (whether the input is an error, and its element
 * count and type, with their squares, as {@code I64}s), which the host reads: if any member's input failed, or the
 * members disagree on shape or type, every member skips the data and its output is an error for that execution,
 * instead of one member hanging or summing garbage. The data all-reduce runs on the rank's communication stream
 * after the actor's stream (where the input is ready), and the actor's stream then waits for it.
 *
 * <p>Made at graph open on the setup thread; {@link #run} on the actor's thread; {@link #close} after the loop left.
 */
final class AllReduceStep implements AutoCloseable {

    private static final int HEADER_LONGS = 5;
    private static final long HEADER_BYTES = 8L * HEADER_LONGS;

    private final CollectiveSpec collective;
    private final String label;
    private final String actorName;
    private final Communicator comm;
    private final DeviceOps ops;
    private final int device;
    private final long actorStream;
    private final long commStream;
    private final long capacity;
    private final long output;
    private final long header;
    private final long inputReady;
    private final long reduced;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment hostHeader;
    private DeviceTensor view;

    /**
     * Allocates the member's output buffer and header on its device.
     *
     * @param collective the plan's collective
     * @param actorName  the member actor's name, for errors
     * @param comm       the member's rank of the collective's communicator
     * @param gpu        the member actor's GPU
     * @param commStream the member's communication stream
     * @param capacity   bytes of the output buffer ({@code CompileOptions.bufferBytes})
     */
    AllReduceStep(CollectiveSpec collective, String actorName, Communicator comm, ActorGpu gpu, long commStream,
                  long capacity) {
        this.collective = collective;
        this.label = "allreduce#" + collective.id();
        this.actorName = actorName;
        this.comm = comm;
        this.ops = gpu.ops();
        this.device = gpu.device();
        this.actorStream = gpu.stream();
        this.commStream = commStream;
        this.capacity = capacity;
        this.hostHeader = arena.allocate(HEADER_BYTES, 8);
        long out = 0;
        long head = 0;
        long ready = 0;
        long done = 0;
        try {
            out = ops.allocate(device, capacity);
            head = ops.allocate(device, HEADER_BYTES);
            ready = ops.createEvent(device, false);
            done = ops.createEvent(device, false);
        } catch (RuntimeException e) {
            free(out, head, ready, done, e);
            arena.close();
            throw e;
        }
        this.output = out;
        this.header = head;
        this.inputReady = ready;
        this.reduced = done;
    }

    /**
     * All-reduces one execution's input.
     *
     * @param input    the member's input for the execution: a device tensor on its device, or a {@link TaskError}
     * @param sequence the execution
     * @return a view of the output buffer holding the sum, on the actor's stream (valid until the next execution's
     *         all-reduce, which the stream orders after every use of it), or a task error when any member failed
     */
    Object run(Object input, long sequence) {
        DeviceTensor t = input instanceof DeviceTensor d ? d : null;
        String refusal = null;
        if (t == null) {
            refusal = input instanceof TaskError ? null : "its input is " + (input == null ? "null" : "a "
                    + input.getClass().getName()) + ", not a DeviceTensor";
        } else if (t.device() != device) {
            refusal = "its input is on gpu" + t.device() + ", the actor on gpu" + device;
        } else if (t.byteSize() > capacity) {
            refusal = "its input of " + t.byteSize() + " bytes exceeds the output buffer of " + capacity
                    + " bytes; raise CompileOptions.bufferBytes";
        }
        boolean failed = t == null || refusal != null;
        long numel = failed ? 0 : t.numel();
        long dtype = failed ? 0 : t.dtype().ordinal() + 1;
        hostHeader.setAtIndex(ValueLayout.JAVA_LONG, 0, failed ? 1 : 0);
        hostHeader.setAtIndex(ValueLayout.JAVA_LONG, 1, numel);
        hostHeader.setAtIndex(ValueLayout.JAVA_LONG, 2, numel * numel);
        hostHeader.setAtIndex(ValueLayout.JAVA_LONG, 3, dtype);
        hostHeader.setAtIndex(ValueLayout.JAVA_LONG, 4, dtype * dtype);
        ops.copyAsync(device, header, hostHeader.address(), HEADER_BYTES, MemcpyKind.HOST_TO_DEVICE, commStream);
        comm.allReduce(header, header, HEADER_LONGS, DType.I64);
        ops.copyAsync(device, hostHeader.address(), header, HEADER_BYTES, MemcpyKind.DEVICE_TO_HOST, commStream);
        ops.synchronizeStream(device, commStream);
        long n = comm.size();
        long errors = hostHeader.getAtIndex(ValueLayout.JAVA_LONG, 0);
        if (refusal != null) {
            return new TaskError(actorName, label, sequence, new IllegalArgumentException(label + ": " + refusal));
        }
        if (input instanceof TaskError) {
            return input;
        }
        if (errors > 0) {
            return new TaskError(actorName, label, sequence, new IllegalStateException(label + ": the input of " + errors
                    + " other member(s) failed in execution #" + sequence + "; see their errors"));
        }
        if (hostHeader.getAtIndex(ValueLayout.JAVA_LONG, 1) != n * numel
                || hostHeader.getAtIndex(ValueLayout.JAVA_LONG, 2) != n * numel * numel
                || hostHeader.getAtIndex(ValueLayout.JAVA_LONG, 3) != n * dtype
                || hostHeader.getAtIndex(ValueLayout.JAVA_LONG, 4) != n * dtype * dtype) {
            return new TaskError(actorName, label, sequence, new IllegalArgumentException(label + ": the members give"
                    + " tensors of different element types or sizes in execution #" + sequence + "; this member gives "
                    + t.dtype() + Arrays.toString(t.shape())));
        }
        if (numel > 0) {
            ops.recordEvent(device, inputReady, t.stream());
            ops.waitEvent(device, commStream, inputReady);
            if (t.stream() != actorStream) {
                ops.recordEvent(device, inputReady, actorStream);
                ops.waitEvent(device, commStream, inputReady);
            }
            comm.allReduce(t.pointer(), output, numel, t.dtype());
            ops.recordEvent(device, reduced, commStream);
            ops.waitEvent(device, actorStream, reduced);
        }
        DeviceTensor v = view;
        if (v == null || v.dtype() != t.dtype() || !Arrays.equals(v.shape(), t.shape())) {
            v = new DeviceTensor(device, output, t.dtype(), actorStream, t.shape());
            view = v;
        }
        return v;
    }

    /** @return the collective */
    CollectiveSpec collective() {
        return collective;
    }

    /** Frees the buffers and events; after the communicators ended (the device waits for their work). */
    @Override
    public void close() {
        RuntimeException failure = free(output, header, inputReady, reduced, null);
        arena.close();
        if (failure != null) {
            throw failure;
        }
    }

    private RuntimeException free(long out, long head, long ready, long done, RuntimeException failure) {
        for (long p : new long[] {out, head}) {
            if (p != 0) {
                try {
                    ops.free(p);
                } catch (RuntimeException e) {
                    failure = add(failure, e);
                }
            }
        }
        for (long e : new long[] {ready, done}) {
            if (e != 0) {
                try {
                    ops.destroyEvent(e);
                } catch (RuntimeException ex) {
                    failure = add(failure, ex);
                }
            }
        }
        return failure;
    }

    private static RuntimeException add(RuntimeException failure, RuntimeException e) {
        if (failure == null) {
            return e;
        }
        failure.addSuppressed(e);
        return failure;
    }
}
