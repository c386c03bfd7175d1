package dev.kiln;

import dev.kiln.executor.GraphLoop;
import dev.kiln.tensor.DType;
import dev.kiln.tensor.Tensor;

/**
 * Zero-copy results: an actor method that returns a tensor may build it straight in the slot of
 * the channel that carries it to another JVM, instead of allocating a tensor that the channel
 * then copies.
 *
 * <pre>{@code
 * public Tensor forward(Tensor x) {
 *     Tensor y = Outputs.tensor(DType.F32, x.shape());   // in the outgoing slot when it can be
 *     for (long i = 0; i < x.numel(); i++) {
 *         y.setFloat(i, 2 * x.getFloat(i));
 *     }
 *     return y;                                         // published without a copy
 * }
 * }</pre>
 *
 * <p>Where the result does not cross JVMs (it is passed by reference anyway), goes to several
 * channels, does not fit the slot, or the method runs outside a compiled graph (a dynamic call),
 * {@link #tensor} allocates an ordinary tensor, so the method works the same everywhere. A slot
 * tensor must be returned by the method that got it, and not kept or touched after it
 * returned: its memory then belongs to the channel's readers.
 */
public final class Outputs {

    private Outputs() {
    }

    /**
     * A tensor for the result of the actor method running on this thread; call at most once per
     * call of the method (a second call allocates).
     *
     * @param dtype the element type
     * @param shape the shape
     * @return a tensor to fill and return; its contents are unspecified
     */
    public static Tensor tensor(DType dtype, long... shape) {
        return GraphLoop.outputTensor(dtype, shape);
    }
}
