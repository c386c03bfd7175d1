package dev.kiln.transport;

import dev.kiln.tensor.DType;
import dev.kiln.tensor.Tensor;

import java.util.Arrays;
import java.util.List;
import java.util.Objects;

/**
 * Deterministic values of every kind the codec knows, one per sequence number, so that a writer
 * and a reader in different JVMs agree on what sequence n carries. Some are large enough to make
 * a channel with small slots grow.
 */
final class MixedValues {

    /** A user class, sent through Fory once registered. */
    record Point(int x, String label, double[] values, List<String> tags) {
        @Override
        public boolean equals(Object o) {
            return o instanceof Point p && x == p.x && label.equals(p.label) && Arrays.equals(values, p.values)
                    && tags.equals(p.tags);
        }

        @Override
        public int hashCode() {
            return Objects.hash(x, label, Arrays.hashCode(values), tags);
        }
    }

    private MixedValues() {
    }

    /** @return a codec with the classes these values need registered */
    static ValueCodec codec() {
        ValueCodec codec = new ValueCodec();
        codec.register(Point.class);
        return codec;
    }

    /**
     * @param sequence the sequence number
     * @return the value for it; a tensor is new and owned by the caller
     */
    static Object of(long sequence) {
        int kind = (int) (sequence % 13);
        int n = (int) (sequence % 97);
        if (sequence % 1000 == 999) {
            // Grows with the sequence, so that a channel grows several times in a run.
            return tensor(DType.I32, sequence, 16 * 1024 * (1 + (int) (sequence / 2000)));
        }
        return switch (kind) {
            case 0 -> null;
            case 1 -> sequence % 2 == 0;
            case 2 -> (int) sequence * 31;
            case 3 -> sequence * 1_000_003L;
            case 4 -> sequence / 7.0;
            case 5 -> "value " + sequence + " ü€😀".repeat(n);
            case 6 -> bytes(sequence, n * 13);
            case 7 -> tensor(DType.F32, sequence, n + 1);
            case 8 -> new RemoteError("actor" + n, "method", sequence, "java.lang.IllegalStateException",
                    n % 2 == 0 ? null : "bad " + sequence, "trace\n\tat x.y(Z.java:" + n + ")");
            case 9 -> new Point(n, "p" + sequence, new double[] {sequence, -n, 0.5}, List.of("a", "b" + n));
            case 10 -> (float) sequence / 3;
            case 11 -> (char) ('a' + n % 26);
            default -> (short) sequence;
        };
    }

    /**
     * @param expected a value from {@link #of}
     * @param actual   a value read back
     * @return whether they are equal (arrays by content, {@code Object[]} element by element, tensors by dtype,
     *         shape and bytes)
     */
    static boolean equal(Object expected, Object actual) {
        if (expected instanceof byte[] e) {
            return actual instanceof byte[] a && Arrays.equals(e, a);
        }
        if (expected instanceof Tensor e) {
            return actual instanceof Tensor a && e.contentEquals(a);
        }
        if (expected instanceof Object[] e) {
            if (!(actual instanceof Object[] a) || a.getClass() != Object[].class || a.length != e.length) {
                return false;
            }
            for (int i = 0; i < e.length; i++) {
                if (!equal(e[i], a[i])) {
                    return false;
                }
            }
            return true;
        }
        return Objects.equals(expected, actual);
    }

    /** @return a description of {@code value} short enough for a failure message */
    static String describe(Object value) {
        if (value instanceof byte[] b) {
            return "byte[" + b.length + "]";
        }
        String s = value instanceof Object[] a ? Arrays.deepToString(a) : String.valueOf(value);
        return s.length() > 120 ? s.substring(0, 120) + "..." : s;
    }

    /** Closes {@code value} if it is a tensor that owns its memory, and every such tensor in an {@code Object[]}. */
    static void dispose(Object value) {
        if (value instanceof Tensor t) {
            t.close();
        } else if (value instanceof Object[] a) {
            for (Object element : a) {
                dispose(element);
            }
        }
    }

    private static byte[] bytes(long seed, int length) {
        byte[] b = new byte[length];
        for (int i = 0; i < length; i++) {
            b[i] = (byte) (seed * 7 + i * 13);
        }
        return b;
    }

    /** @return a 1-D tensor of {@code elements} elements whose content depends on {@code seed} */
    static Tensor tensor(DType dtype, long seed, long elements) {
        Tensor t = Tensor.allocate(dtype, elements);
        long bytes = t.byteSize();
        for (long i = 0; i + 8 <= bytes; i += 8) {
            t.data().set(java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED, i, seed * 0x9E3779B97F4A7C15L + i);
        }
        for (long i = bytes & ~7L; i < bytes; i++) {
            t.data().set(java.lang.foreign.ValueLayout.JAVA_BYTE, i, (byte) (seed + i));
        }
        return t;
    }
}
