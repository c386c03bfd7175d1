package dev.kiln.cuda;

/**
 * Hands device pointers between Kiln and JCuda code as {@code jcuda.Pointer} values. JCuda
 * ({@code org.jcuda:jcuda}) is an optional dependency: only this class uses it, and only once one of
 * its methods is called. Without JCuda on the class path those methods throw
 * {@link IllegalStateException} saying what to add.
 *
 * <p>The pointers made here carry the address only; JCuda's native library is not needed to
 * make or read them. Thread-safe.
 */
// Its methods show JCuda's Pointer to callers, who require jcuda themselves (an optional dependency of Kiln).
@SuppressWarnings("exports")
public final class JCudaPointers {
    private static final String MISSING = "JCuda interop needs org.jcuda:jcuda on the class path"
            + " (an optional dependency of kiln-native-bindings): add it to your build";

    private JCudaPointers() {
    }

    /**
     * Wraps a device address as a JCuda pointer.
     *
     * @param devicePointer the device address, e.g. from {@link Cuda#malloc}
     * @return a {@code jcuda.Pointer} to that address
     * @throws IllegalStateException when JCuda is not on the class path
     */
    public static jcuda.Pointer toPointer(long devicePointer) {
        requireJCuda();
        return Bridge.toPointer(devicePointer);
    }

    /**
     * Reads the address a JCuda pointer points at (its native address plus byte offset).
     *
     * @param pointer a pointer to native memory, e.g. one filled by {@code JCuda.cudaMalloc}
     * @return the address
     * @throws IllegalArgumentException when the pointer is null or points into a Java array or
     *                                  buffer rather than native memory
     * @throws IllegalStateException    when JCuda is not on the class path
     */
    public static long address(jcuda.Pointer pointer) {
        requireJCuda();
        return Bridge.address(pointer);
    }

    private static void requireJCuda() {
        try {
            Class.forName("jcuda.Pointer", false, JCudaPointers.class.getClassLoader());
        } catch (ClassNotFoundException | LinkageError e) {
            throw new IllegalStateException(MISSING, e);
        }
    }

    /** The only code that links against JCuda; loaded once JCuda is known to be present. */
    private static final class Bridge extends jcuda.Pointer {
        // JCuda's Pointer(long) and Pointer(Pointer, long) constructors and its address accessors
        // are protected: a subclass is the supported way to reach them without reflection.
        private Bridge(long address) {
            super(address);
        }

        private Bridge(jcuda.Pointer other) {
            super(other, 0);
        }

        static jcuda.Pointer toPointer(long address) {
            return new Bridge(address);
        }

        static long address(jcuda.Pointer pointer) {
            if (pointer == null) {
                throw new IllegalArgumentException("null JCuda pointer");
            }
            Bridge copy = new Bridge(pointer);
            if (copy.getNativePointer() == 0) {
                throw new IllegalArgumentException("the JCuda pointer " + pointer
                        + " points into a Java array or buffer, not native memory");
            }
            return copy.getNativePointer() + copy.getByteOffset();
        }
    }
}
