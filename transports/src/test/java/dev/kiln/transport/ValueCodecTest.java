package dev.kiln.transport;

import dev.kiln.tensor.DType;
import dev.kiln.tensor.Tensor;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.Tuple;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.MethodSource;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Jupiter tests carry their own {@code @Timeout}: a class-level one would also sit on the jqwik property. */
class ValueCodecTest {

    record Unregistered(int x) {
    }

    record Holder(String name, Unregistered inner) {
    }

    static Stream<Object> nativeValues() {
        return Stream.of(null, true, false, (byte) -7, Byte.MAX_VALUE, (short) -300, Short.MIN_VALUE, 'x', '\uffff',
                0, -1, Integer.MIN_VALUE, Integer.MAX_VALUE, 0L, Long.MIN_VALUE, Long.MAX_VALUE,
                1.5f, -0.0f, Float.NaN, Float.intBitsToFloat(0x7fc00001), Float.MIN_VALUE, Float.NEGATIVE_INFINITY,
                2.25, -0.0, Double.NaN, Double.MAX_VALUE, Double.POSITIVE_INFINITY,
                "", "hello", "ü€😀 mixed \u0000 nul", "x".repeat(10_000),
                new byte[0], new byte[] {1, -2, 3}, new byte[5000],
                new RemoteError("tok", "encode", 42, "java.lang.IllegalStateException", null, "trace"),
                new RemoteError("a", "m", -1, "E", "message ü", ""),
                RemoteError.of("model", "forward", 7, new IllegalArgumentException("bad shape")));
    }

    @ParameterizedTest
    @Timeout(60)
    @MethodSource("nativeValues")
    void nativeValueRoundTrips(Object value) {
        ValueCodec codec = new ValueCodec();
        try (Arena arena = Arena.ofConfined()) {
            Object back = roundTrip(codec, value, arena);
            if (value instanceof byte[] b) {
                assertArrayEquals(b, (byte[]) back);
            } else if (value instanceof Float f) {
                assertEquals(Float.floatToRawIntBits(f), Float.floatToRawIntBits((Float) back), "raw bits kept");
            } else if (value instanceof Double d) {
                assertEquals(Double.doubleToRawLongBits(d), Double.doubleToRawLongBits((Double) back), "raw bits kept");
            } else {
                assertEquals(value, back);
            }
            if (value != null) {
                assertEquals(value.getClass(), back.getClass());
            }
        }
    }

    @ParameterizedTest
    @Timeout(60)
    @EnumSource(DType.class)
    void tensorRoundTripsAsAnAlignedViewOfTheRegion(DType dtype) {
        ValueCodec codec = new ValueCodec();
        for (long[] shape : List.of(new long[] {}, new long[] {0}, new long[] {5}, new long[] {2, 3, 7},
                new long[] {1, 1, 1, 1, 1, 1, 1, 9})) {
            long numel = Arrays.stream(shape).reduce(1, Math::multiplyExact);
            try (Arena arena = Arena.ofConfined(); Tensor t = MixedValues.tensor(dtype, numel + 3, numel)) {
                Tensor shaped = Tensor.view(t.data(), dtype, shape);
                MemorySegment region = arena.allocate(4096, 64);
                long n = codec.encode(shaped, region);
                Tensor back = assertInstanceOf(Tensor.class, codec.decode(region.asSlice(0, n)));
                assertTrue(shaped.contentEquals(back), () -> back + " differs from " + shaped);
                assertFalse(back.ownsMemory(), "a view of the region, not a copy");
                long offset = back.data().address() - region.address();
                assertTrue(offset >= 0 && offset + back.byteSize() <= n, "inside the region");
                assertEquals(0, offset % 64, "data is 64-byte aligned");
                assertEquals(n, offset + back.byteSize(), "data is last");
            }
        }
    }

    @Test
    @Timeout(60)
    void tooSmallRegionReportsTheSizeNeededAndWritesNothing() {
        ValueCodec codec = new ValueCodec();
        List<Object> values = new ArrayList<>(nativeValues().toList());
        values.add(new MixedValues.Point(1, "p", new double[] {1}, List.of()));
        codec.register(MixedValues.Point.class);
        try (Arena arena = Arena.ofConfined()) {
            for (Object value : values) {
                MemorySegment big = arena.allocate(64 * 1024, 64);
                long n = codec.encode(value, big);
                assertTrue(n > 0, () -> "fits: " + MixedValues.describe(value));
                MemorySegment small = arena.allocate(n - 1, 64);
                small.fill((byte) 0x5A);
                assertEquals(-n, codec.encode(value, small), () -> "needs " + n + ": " + MixedValues.describe(value));
                assertEquals(-1, small.asByteBuffer().mismatch(arena.allocate(n - 1).fill((byte) 0x5A).asByteBuffer()),
                        "nothing written");
                MemorySegment exact = arena.allocate(n, 64);
                assertEquals(n, codec.encode(value, exact));
                assertTrue(MixedValues.equal(value, codec.decode(exact)), () -> MixedValues.describe(value));
            }
        }
    }

    @Test
    @Timeout(60)
    void remoteErrorCapturesTheException() {
        RemoteError e = RemoteError.of("model", "forward", 9, new IllegalStateException("no GPU"));
        assertEquals("java.lang.IllegalStateException", e.exceptionClass());
        assertEquals("no GPU", e.message());
        assertTrue(e.stackTrace().startsWith("java.lang.IllegalStateException: no GPU"), e.stackTrace());
        assertTrue(e.stackTrace().contains("remoteErrorCapturesTheException"), e.stackTrace());
        assertNull(RemoteError.of("a", "b", 0, new RuntimeException()).message());
        assertThrows(NullPointerException.class, () -> new RemoteError(null, "m", 0, "E", "x", "t"));
    }

    @Test
    @Timeout(60)
    void registeredClassRoundTrips() {
        ValueCodec writer = new ValueCodec();
        writer.register(MixedValues.Point.class);
        writer.register(MixedValues.Point.class); // twice is harmless
        ValueCodec reader = new ValueCodec();
        reader.register(Unregistered.class); // a different order in the other process
        reader.register(MixedValues.Point.class);
        MixedValues.Point p = new MixedValues.Point(3, "p ü", new double[] {1.5, Double.NaN}, List.of("x", "y"));
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment region = arena.allocate(4096, 64);
            long n = writer.encode(p, region);
            assertEquals(p, reader.decode(region.asSlice(0, n)));
        }
    }

    @Test
    @Timeout(60)
    void unregisteredClassIsRefusedWithHowToRegister() {
        ValueCodec codec = new ValueCodec();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment region = arena.allocate(4096, 64);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> codec.encode(new Unregistered(1), region));
            assertEquals("cannot send a value of class " + Unregistered.class.getName() + " between processes: it is"
                    + " not registered; register it in every process of the graph with codec.register(Unregistered.class)",
                    e.getMessage());
            assertEquals(Unregistered.class.getName(),
                    assertInstanceOf(ValueCodec.UnregisteredClassException.class, e).className());
            assertThrows(IllegalArgumentException.class, () -> codec.encode(new Unregistered[] {new Unregistered(1)},
                    region), "an array of an unregistered class too");
            assertThrows(IllegalArgumentException.class, () -> codec.encode(List.of(new Unregistered(1)), region),
                    "a list of an unregistered class too");
        }
    }

    enum Color {
        RED, GREEN {
            @Override
            public String toString() {
                return "green, with a body of its own";
            }
        }
    }

    static Stream<Object> valuesFromTheJdk() {
        return Stream.of(new int[] {1, -2, Integer.MAX_VALUE}, new float[] {1.5f, Float.NaN}, new long[] {Long.MIN_VALUE},
                new double[] {-0.0, 2.5}, new short[] {7}, new char[] {'k', '\u20ac'}, new boolean[] {true, false},
                new int[0], new int[][] {{1}, {2, 3}}, new String[] {"a", null}, new Integer[] {1, null},
                List.of("a", "b"), new ArrayList<>(List.of(1, 2)), List.of(), Arrays.asList("x", "y"),
                Map.of("k", 1), new java.util.HashMap<>(Map.of(1, "one")), new java.util.TreeMap<>(Map.of("z", 2.0)),
                java.util.Set.of(1L, 2L), new java.util.LinkedHashSet<>(List.of("q")), java.util.Optional.of("o"),
                java.util.Optional.empty(), List.of(new int[] {4}, new float[] {5f}), Map.of("ids", List.of(1, 2)),
                java.math.BigDecimal.TEN, java.time.Instant.ofEpochSecond(1_700_000_000L));
    }

    @ParameterizedTest
    @Timeout(60)
    @MethodSource("valuesFromTheJdk")
    void jdkValuesCrossWithoutRegistration(Object value) {
        ValueCodec codec = new ValueCodec();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment region = arena.allocate(64 * 1024, 64);
            long n = codec.encode(value, region);
            Object back = new ValueCodec().decode(region.asSlice(0, n));
            assertEquals(value.getClass(), back.getClass());
            assertTrue(deepEqual(value, back), () -> value + " -> " + back);
        }
    }

    private static boolean deepEqual(Object a, Object b) {
        if (a instanceof List<?> x && b instanceof List<?> y) {
            if (x.size() != y.size()) {
                return false;
            }
            for (int i = 0; i < x.size(); i++) {
                if (!deepEqual(x.get(i), y.get(i))) {
                    return false;
                }
            }
            return true;
        }
        return Arrays.deepEquals(new Object[] {a}, new Object[] {b});
    }

    /** A registered class whose Java-serialization hooks would run code chosen by the bytes of another process. */
    static final class WithHooks implements java.io.Serializable {
        private static final long serialVersionUID = 1L;
        static final java.util.concurrent.atomic.AtomicInteger HOOKS_RUN = new java.util.concurrent.atomic.AtomicInteger();
        int value;

        WithHooks(int value) {
            this.value = value;
        }

        @java.io.Serial
        private void readObject(java.io.ObjectInputStream in) throws java.io.IOException, ClassNotFoundException {
            HOOKS_RUN.incrementAndGet();
            in.defaultReadObject();
        }

        @java.io.Serial
        private void writeObject(java.io.ObjectOutputStream out) throws java.io.IOException {
            HOOKS_RUN.incrementAndGet();
            out.defaultWriteObject();
        }

        @java.io.Serial
        private Object readResolve() {
            HOOKS_RUN.incrementAndGet();
            return this;
        }
    }

    /** Externalizable: Fory would call readExternal. */
    public static final class External implements java.io.Externalizable {
        private static final long serialVersionUID = 1L;
        static final java.util.concurrent.atomic.AtomicInteger HOOKS_RUN = new java.util.concurrent.atomic.AtomicInteger();
        int value;

        /** For Externalizable. */
        public External() {
        }

        @Override
        public void writeExternal(java.io.ObjectOutput out) throws java.io.IOException {
            HOOKS_RUN.incrementAndGet();
            out.writeInt(value);
        }

        @Override
        public void readExternal(java.io.ObjectInput in) throws java.io.IOException {
            HOOKS_RUN.incrementAndGet();
            value = in.readInt();
        }
    }

    @Test
    @Timeout(60)
    void registeredClassesCrossFieldByFieldAndTheirJavaHooksNeverRun() {
        ValueCodec writer = new ValueCodec();
        ValueCodec reader = new ValueCodec();
        for (ValueCodec c : List.of(writer, reader)) {
            c.register(WithHooks.class);
            c.register(External.class);
            c.register(Color.class);
        }
        External ext = new External();
        ext.value = 41;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment region = arena.allocate(4096, 64);
            long n = writer.encode(new WithHooks(7), region);
            assertEquals(7, ((WithHooks) reader.decode(region.asSlice(0, n))).value);
            n = writer.encode(ext, region);
            assertEquals(41, ((External) reader.decode(region.asSlice(0, n))).value);
            n = writer.encode(List.of(Color.GREEN, Color.RED), region);
            assertEquals(List.of(Color.GREEN, Color.RED), reader.decode(region.asSlice(0, n)));
        }
        assertEquals(0, WithHooks.HOOKS_RUN.get(), "readObject, writeObject or readResolve ran");
        assertEquals(0, External.HOOKS_RUN.get(), "readExternal or writeExternal ran");
    }

    @Test
    @Timeout(60)
    void valuesBoundToTheirJvmAreRefused() {
        ValueCodec codec = new ValueCodec();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> codec.register(java.util.concurrent.locks.ReentrantLock.class));
        assertTrue(e.getMessage().contains("java.util.concurrent.locks.Lock belongs to the JVM that made it"),
                e.getMessage());
        try (Arena arena = Arena.ofConfined()) {
            e = assertThrows(IllegalArgumentException.class, () -> codec.encode(new Thread(() -> { }),
                    arena.allocate(4096, 64)));
            assertTrue(e.getMessage().contains("java.lang.Thread belongs to the JVM"), e.getMessage());
        }
    }

    @Test
    @Timeout(60)
    void refusalTellsFromTheDeclaredTypeWhetherValuesCanCross() {
        ValueCodec codec = new ValueCodec();
        for (Class<?> ok : List.of(int[].class, float[][].class, String.class, Integer.class, Tensor.class, List.class,
                java.util.ArrayList.class, Map.class, java.util.Optional.class, Object.class, Number.class,
                CharSequence.class, Void.class)) {
            assertNull(codec.refusal(ok), ok::getName);
        }
        assertEquals(Unregistered.class.getName() + " is not registered; register it for every JVM of the runtime:"
                + " Kiln.local(KilnOptions.defaults().register(ValueCodecTest.Unregistered.class))",
                codec.refusal(Unregistered.class));
        assertTrue(codec.refusal(Unregistered[].class).startsWith(Unregistered.class.getName()));
        assertTrue(codec.refusal(Color.class).startsWith(Color.class.getName()));
        assertTrue(codec.refusal(java.util.concurrent.locks.ReentrantLock.class).contains("belongs to the JVM"));
        assertTrue(codec.refusal(java.io.InputStream.class).contains("belongs to the JVM"));
        codec.register(Unregistered.class);
        codec.register(Color.class);
        assertNull(codec.refusal(Unregistered.class));
        assertNull(codec.refusal(Unregistered[].class));
        assertNull(codec.refusal(Color.class));
        assertNull(codec.refusal(Record.class), "a JDK supertype of a registered class");
    }

    @Test
    @Timeout(60)
    void unregisteredFieldClassIsRefused() {
        ValueCodec codec = new ValueCodec();
        codec.register(Holder.class);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment region = arena.allocate(4096, 64);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> codec.encode(new Holder("h", new Unregistered(2)), region));
            assertTrue(e.getMessage().startsWith("cannot serialize a value of class " + Holder.class.getName()), e.getMessage());
            assertTrue(e.getMessage().contains(Unregistered.class.getName()), e.getMessage());
        }
    }

    @Test
    @Timeout(60)
    void readerWithoutTheRegistrationRefusesToDecode() {
        ValueCodec writer = new ValueCodec();
        writer.register(Unregistered.class);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment region = arena.allocate(4096, 64);
            long n = writer.encode(new Unregistered(5), region);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> new ValueCodec().decode(region.asSlice(0, n)));
            assertTrue(e.getMessage().contains("codec.register"), e.getMessage());
        }
    }

    @Test
    @Timeout(60)
    void registeringAClassThatNeedsNoRegistrationIsHarmless() {
        ValueCodec codec = new ValueCodec();
        for (Class<?> c : List.of(String.class, Tensor.class, Object[].class, int[].class, float[].class,
                java.util.ArrayList.class, Integer.class)) {
            codec.register(c);
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment region = arena.allocate(4096, 64);
            for (Object v : List.of("s", new int[] {1, 2}, new float[] {3f}, new ArrayList<>(List.of(4)))) {
                long n = codec.encode(v, region);
                assertTrue(Arrays.deepEquals(new Object[] {v}, new Object[] {codec.decode(region.asSlice(0, n))}));
            }
        }
    }

    @Test
    @Timeout(60)
    void garbageIsRefused() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment region = arena.allocate(64, 64);
            region.set(java.lang.foreign.ValueLayout.JAVA_INT, 0, 999);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new ValueCodec().decode(region));
            assertEquals("not an encoded value: tag 999", e.getMessage());
        }
    }

    static Stream<Arguments> objectArrays() {
        return Stream.<Object[]>of(new Object[] {},
                new Object[] {1, "x", null},
                new Object[] {new byte[] {1, 2}, 'c', 2.5, true, (short) 3, (byte) 4, 5L, 6f},
                new Object[] {1, new Object[] {2, new Object[] {"deep ü", null}}, new Object[] {}},
                new Object[] {new Object[] {}},
                new Object[] {new RemoteError("a", "m", 3, "E", null, "t"), "x".repeat(3000)})
                .map(array -> Arguments.of((Object) array));
    }

    @ParameterizedTest
    @Timeout(60)
    @MethodSource("objectArrays")
    void objectArrayRoundTripsAsANewArray(Object[] array) {
        ValueCodec codec = new ValueCodec();
        try (Arena arena = Arena.ofConfined()) {
            Object back = roundTrip(codec, array, arena);
            assertEquals(Object[].class, back.getClass());
            assertTrue(back != array);
            assertTrue(MixedValues.equal(array, back), () -> MixedValues.describe(back));
        }
    }

    @ParameterizedTest
    @Timeout(60)
    @MethodSource("objectArrays")
    void objectArrayInATooSmallRegionReportsTheSizeNeeded(Object[] array) {
        ValueCodec codec = new ValueCodec();
        try (Arena arena = Arena.ofConfined()) {
            long n = codec.encode(array, arena.allocate(64 * 1024, 64));
            assertTrue(n >= 8 + 16L * array.length);
            for (long size = 0; size < n; size++) {
                assertEquals(-n, codec.encode(array, arena.allocate(Math.max(size, 1), 64).asSlice(0, size)),
                        "region of " + size + " bytes");
            }
            MemorySegment exact = arena.allocate(n, 64);
            assertEquals(n, codec.encode(array, exact));
            assertTrue(MixedValues.equal(array, codec.decode(exact)));
        }
    }

    @Test
    @Timeout(60)
    void tensorsInsideArraysAreAlignedViewsOfTheRegion() {
        ValueCodec codec = MixedValues.codec();
        try (Arena arena = Arena.ofConfined(); Tensor t1 = MixedValues.tensor(DType.F32, 1, 7);
             Tensor t2 = MixedValues.tensor(DType.I8, 2, 13)) {
            MixedValues.Point p = new MixedValues.Point(1, "p", new double[] {2}, List.of("t"));
            Object[] array = {(byte) 1, t1, "odd length", new Object[] {p, 'c', t2}, t2};
            MemorySegment region = arena.allocate(8192, 64);
            long n = codec.encode(array, region);
            Object[] back = (Object[]) codec.decode(region.asSlice(0, n));
            assertTrue(MixedValues.equal(array, back), () -> MixedValues.describe(back));
            List<Tensor> tensors = List.of((Tensor) back[1], (Tensor) ((Object[]) back[3])[2], (Tensor) back[4]);
            for (Tensor t : tensors) {
                assertFalse(t.ownsMemory(), "a view of the region, not a copy");
                long offset = t.data().address() - region.address();
                assertTrue(offset >= 0 && offset + t.byteSize() <= n, "inside the region");
                assertEquals(0, offset % 64, () -> t + " at " + offset + " is not 64-byte aligned");
            }
        }
    }

    @Test
    @Timeout(60)
    void unregisteredArrayElementIsRefusedWithHowToRegister() {
        ValueCodec codec = new ValueCodec();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment region = arena.allocate(4096, 64);
            Object[] array = {1, new Object[] {"x", new Unregistered(1)}};
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> codec.encode(array, region));
            assertEquals("cannot send a value of class " + Unregistered.class.getName() + " between processes: it is"
                    + " not registered; register it in every process of the graph with codec.register(Unregistered.class)",
                    e.getMessage());
            codec.register(Unregistered.class);
            long n = codec.encode(array, region);
            assertTrue(MixedValues.equal(array, codec.decode(region.asSlice(0, n))));
        }
    }

    @Test
    @Timeout(60)
    void otherArraysGoThroughFory() {
        ValueCodec codec = new ValueCodec();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment region = arena.allocate(4096, 64);
            long n = codec.encode(new String[] {"a"}, region);
            assertArrayEquals(new String[] {"a"}, (String[]) codec.decode(region.asSlice(0, n)));
        }
    }

    @Test
    @Timeout(60)
    void arrayThatContainsItselfIsRefused() {
        Object[] cycle = new Object[2];
        cycle[0] = 1;
        cycle[1] = new Object[] {cycle};
        try (Arena arena = Arena.ofConfined()) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> new ValueCodec().encode(cycle, arena.allocate(1 << 20, 64)));
            assertEquals("cannot encode an Object[] nested more than 32 levels deep (does an array contain itself?)",
                    e.getMessage());
        }
    }

    @Test
    @Timeout(60)
    void corruptArrayIsRefused() {
        ValueCodec codec = new ValueCodec();
        try (Arena arena = Arena.ofConfined()) {
            Object[] array = {"abc", 42L, new Object[] {1.5}};
            MemorySegment region = arena.allocate(4096, 64);
            long n = codec.encode(array, region);
            for (long size = 0; size < n; size++) {
                long s = size;
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                        () -> codec.decode(region.asSlice(0, s)), () -> "truncated to " + s + " bytes");
                assertTrue(e.getMessage().startsWith("not an encoded value"), e.getMessage());
            }
            MemorySegment copy = arena.allocate(n, 64).copyFrom(region.asSlice(0, n));
            copy.set(java.lang.foreign.ValueLayout.JAVA_INT, 4, Integer.MAX_VALUE);
            assertEquals("not an encoded value: Object[] of 2147483647 elements in " + n + " bytes",
                    assertThrows(IllegalArgumentException.class, () -> codec.decode(copy)).getMessage());
            copy.copyFrom(region.asSlice(0, n));
            copy.set(java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED, 8 + 16, n - 4); // element 1 starts near the end
            assertEquals("not an encoded value: element 1 at " + (n - 4) + " (+16) outside the Object[] of " + n + " bytes",
                    assertThrows(IllegalArgumentException.class, () -> codec.decode(copy)).getMessage());
        }
    }

    @Property(tries = 500)
    void randomValuesRoundTrip(@ForAll("values") Object value) {
        ValueCodec codec = MixedValues.codec();
        try (Arena arena = Arena.ofConfined()) {
            Object back = roundTrip(codec, value, arena);
            assertTrue(MixedValues.equal(value, back), () -> MixedValues.describe(value) + " came back as "
                    + MixedValues.describe(back));
        } finally {
            MixedValues.dispose(value);
        }
    }

    @Provide
    Arbitrary<Object> values() {
        // Any code point but lone surrogates, which UTF-8 cannot carry.
        Arbitrary<String> strings = Arbitraries.integers().between(0, Character.MAX_CODE_POINT)
                .filter(cp -> cp < Character.MIN_SURROGATE || cp > Character.MAX_SURROGATE)
                .list().ofMaxSize(100)
                .map(cps -> cps.stream().collect(StringBuilder::new, StringBuilder::appendCodePoint, StringBuilder::append)
                        .toString());
        Arbitrary<Object> leaves = Arbitraries.oneOf(
                Arbitraries.just(null),
                Arbitraries.of(true, false),
                Arbitraries.bytes().map(b -> b),
                Arbitraries.shorts().map(s -> s),
                Arbitraries.chars().map(c -> c),
                Arbitraries.integers().map(i -> i),
                Arbitraries.longs().map(l -> l),
                Arbitraries.floats().map(f -> f),
                Arbitraries.doubles().map(d -> d),
                strings.map(s -> s),
                Arbitraries.bytes().array(byte[].class).ofMaxSize(2000).map(b -> b),
                Combinators.combine(Arbitraries.of(DType.class), Arbitraries.longs().between(0, 50),
                        Arbitraries.longs()).as((d, n, seed) -> MixedValues.tensor(d, seed, n)),
                Combinators.combine(strings, strings, Arbitraries.longs(), strings, strings.injectNull(0.3), strings)
                        .as(RemoteError::new),
                Combinators.combine(Arbitraries.integers(), strings, Arbitraries.doubles().array(double[].class).ofMaxSize(20),
                        strings.list().ofMaxSize(5)).as(MixedValues.Point::new));
        Arbitrary<Object> arrays = leaves.list().ofMaxSize(6).map(l -> (Object) l.toArray());
        Arbitrary<Object> nested = Arbitraries.oneOf(leaves, arrays).list().ofMaxSize(4).map(l -> (Object) l.toArray());
        return Arbitraries.frequencyOf(Tuple.of(8, leaves), Tuple.of(1, arrays), Tuple.of(1, nested));
    }

    /** Encodes into a region just large enough (found by asking with an empty one), then decodes. */
    private static Object roundTrip(ValueCodec codec, Object value, Arena arena) {
        long needed = -codec.encode(value, MemorySegment.NULL);
        assertTrue(needed > 0);
        MemorySegment region = arena.allocate(needed, 64);
        assertEquals(needed, codec.encode(value, region));
        return codec.decode(region);
    }
}
