package dev.kiln.bench;

import dev.kiln.compiler.IdleMode;
import dev.kiln.tensor.DType;
import dev.kiln.tensor.Tensor;

import java.lang.foreign.ValueLayout;

/**
 * What one execution does, the same on every path ({@link Path}): the graph shape, its actors
 * and its input. Every actor runs a {@link Stage}; actor {@code i} is {@code new Stage(i)}.
 */
public enum Scenario {
    /** One actor: {@code step(x)}. */
    SINGLE(1, 0),
    /** Four actors in a chain: {@code step3(step2(step1(step0(x))))}. */
    CHAIN4(4, 0),
    /** The input to four actors at once, their four results back as a multi-output graph; the driver sums them. */
    SCATTER4(4, 0),
    /** One actor, one method of 8 arguments, each from the input ({@code Graph.input8()}: {@code execute(new Tuple8<>(...))}). */
    ARGS8(1, 0),
    /** One actor that reads a 4 KiB tensor's first and last element; the tensor is the input. */
    TENSOR_4K(1, 4 << 10),
    /** As {@link #TENSOR_4K}, 1 MiB. */
    TENSOR_1M(1, 1 << 20),
    /** As {@link #TENSOR_4K}, 64 MiB. */
    TENSOR_64M(1, 64 << 20);

    /** The JMH parameter value that picks the idle mode from the thread count, see {@link #idle(String)}. */
    public static final String AUTO = "AUTO";

    private final int actors;
    private final long tensorBytes;

    Scenario(int actors, long tensorBytes) {
        this.actors = actors;
        this.tensorBytes = tensorBytes;
    }

    /** @return actors in the graph */
    public int actors() {
        return actors;
    }

    /** @return whether the input is a tensor */
    public boolean tensor() {
        return tensorBytes > 0;
    }

    /** @return the tensor's size in bytes, 0 if the input is a number */
    public long tensorBytes() {
        return tensorBytes;
    }

    /** @return threads that wait for work in one execution: one per actor, plus the driver */
    public int threads() {
        return actors + 1;
    }

    /**
     * The idle mode for a JMH parameter: {@code SPIN}, {@code BACKOFF}, {@code BLOCKING}, or
     * {@value #AUTO}: {@code SPIN} when every waiting thread has a core ({@link #threads()} at
     * most the available processors), else {@code BACKOFF}. Spinning threads beyond the cores wait
     * for the scheduler to preempt a spinner at every hand-off (milliseconds per execution).
     *
     * @param param the parameter value
     * @return the mode
     */
    public IdleMode idle(String param) {
        if (AUTO.equals(param)) {
            return threads() <= Runtime.getRuntime().availableProcessors() ? IdleMode.SPIN : IdleMode.BACKOFF;
        }
        return IdleMode.valueOf(param);
    }

    /**
     * @return a tensor for this scenario with its first and last element set (close it when done)
     * @throws IllegalStateException if the scenario takes no tensor
     */
    public Tensor newTensor() {
        if (!tensor()) {
            throw new IllegalStateException(this + " takes no tensor");
        }
        Tensor t = Tensor.allocate(DType.I64, tensorBytes / Long.BYTES);
        t.data().set(ValueLayout.JAVA_LONG_UNALIGNED, 0, 0x5DEECE66DL);
        t.data().set(ValueLayout.JAVA_LONG_UNALIGNED, tensorBytes - Long.BYTES, 0xBL);
        return t;
    }

    /**
     * The result of one execution computed on the calling thread, to check a path against.
     *
     * @param x      the input number (ignored by tensor scenarios)
     * @param tensor the input tensor (tensor scenarios only)
     * @return what the execution must return
     */
    public long expected(long x, Tensor tensor) {
        return switch (this) {
            case SINGLE -> new Stage(0).step(x);
            case CHAIN4 -> {
                long v = x;
                for (int i = 0; i < 4; i++) {
                    v = new Stage(i).step(v);
                }
                yield v;
            }
            case SCATTER4 -> {
                long sum = 0;
                for (int i = 0; i < 4; i++) {
                    sum += new Stage(i).step(x);
                }
                yield sum;
            }
            case ARGS8 -> new Stage(0).mix8(x, arg(x, 1), arg(x, 2), arg(x, 3), arg(x, 4), arg(x, 5), arg(x, 6), arg(x, 7));
            case TENSOR_4K, TENSOR_1M, TENSOR_64M -> new Stage(0).touch(tensor);
        };
    }

    /**
     * Argument {@code i} of {@link #ARGS8} for input {@code x}; kept in 0..127 ({@code Long}'s box cache).
     *
     * @param x the input number
     * @param i the argument index, 0..7
     * @return the argument
     */
    public static long arg(long x, int i) {
        return (x + i) & 127;
    }
}
