package dev.kiln.executor.wire;

import dev.kiln.ActorFactory;
import dev.kiln.executor.wire.WireActors.Config;
import dev.kiln.executor.wire.WireActors.Foo;
import dev.kiln.executor.wire.WireActors.NoDefaultFn;
import dev.kiln.executor.wire.WireActors.Over;
import dev.kiln.executor.wire.WireActors.PrefixFn;
import dev.kiln.executor.wire.WireActors.Secret;
import dev.kiln.executor.wire.WireActors.Text;
import dev.kiln.executor.wire.WireActors.UpperFn;
import dev.kiln.graph.Method0;
import dev.kiln.graph.Method1;
import dev.kiln.graph.Method2;
import dev.kiln.graph.MethodRef;
import dev.kiln.tensor.Tensor;
import dev.kiln.transport.ValueCodec;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.io.Serializable;
import java.lang.invoke.SerializedLambda;
import java.lang.reflect.Method;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

@Timeout(30)
class LambdaCodecTest {

    private final ValueCodec codec = new ValueCodec();
    /** Read by a lambda below, which therefore captures {@code this}. */
    private final String suffix = "?";

    LambdaCodecTest() {
        codec.register(Config.class);
    }

    private byte[] write(Serializable function) {
        WireOut out = new WireOut();
        LambdaCodec.write(out, function, codec);
        return out.toByteArray();
    }

    /** Reads a function; the caller states its type. */
    @SuppressWarnings("unchecked")
    private <F> F read(byte[] bytes) {
        WireIn in = new WireIn(bytes);
        Serializable function = LambdaCodec.read(in, codec, getClass().getClassLoader());
        in.expectEnd();
        return (F) function;
    }

    private <F extends Serializable> F roundTrip(F function) {
        F back = read(write(function));
        assertNotSame(function, back);
        assertEquals(function.getClass().getInterfaces()[0], back.getClass().getInterfaces()[0]);
        return back;
    }

    @Test
    void methodReferenceCallsTheSameMethod() throws Exception {
        Method1<Text, String, String> upper = Text::upper;
        Method1<Text, String, String> lower = Text::lower;
        assertEquals("AB", roundTrip(upper).apply(new Text(), "aB"));
        assertEquals("ab", roundTrip(lower).apply(new Text(), "aB"));
        Method2<Text, String, String, String> concat = Text::concat;
        assertEquals("a+b", roundTrip(concat).apply(new Text(), "a", "b"));
    }

    @Test
    void overloadedMethodReferenceResolvesToTheOverloadItWasCompiledFor() throws Exception {
        Method1<Over, Integer, String> ofInt = Over::fmt;
        Method1<Over, String, String> ofString = Over::fmt;
        Method1<Over, Object, String> ofObject = Over::fmt;
        Method2<Over, String, Integer, String> ofTwo = Over::fmt;
        Over over = new Over();
        assertEquals("int 7", roundTrip(ofInt).apply(over, 7));
        assertEquals("string 7", roundTrip(ofString).apply(over, "7"));
        assertEquals("object String:7", roundTrip(ofObject).apply(over, "7"));
        assertEquals("string+int a1", roundTrip(ofTwo).apply(over, "a", 1));
        MethodRef resolved = MethodRef.of(roundTrip(ofInt), 1);
        assertEquals(List.of(Integer.class), resolved.parameterTypes());
        assertEquals("Over.fmt", resolved.displayName());
    }

    /**
     * One method reference at two types in one class: its {@code $deserializeLambda$} tells them apart by method
     * only, so without retyping one of them would come back enforcing the other's type and fail on its arguments.
     */
    @Test
    void oneMethodReferenceAtTwoTypesComesBackAtEachOnesType() throws Exception {
        Method1<Over, Double, String> atDouble = Over::fmt;
        Method1<Over, List<String>, String> atList = Over::fmt;
        Over over = new Over();
        Method1<Over, Double, String> doubleBack = roundTrip(atDouble);
        Method1<Over, List<String>, String> listBack = roundTrip(atList);
        assertEquals(List.of(Double.class), MethodRef.of(doubleBack, 1).parameterTypes());
        assertEquals(List.of(List.class), MethodRef.of(listBack, 1).parameterTypes());
        assertEquals("object Double:0.5", doubleBack.apply(over, 0.5));
        assertTrue(listBack.apply(over, List.of("x")).startsWith("object "));
    }

    @Test
    void capturedValuesTravel() throws Exception {
        Text text = new Text();
        for (int times : new int[] {2, 3}) {
            Method1<Text, String, String> repeat = (t, s) -> t.repeat(s, times);
            assertEquals("ab".repeat(times), roundTrip(repeat).apply(text, "ab"));
        }
        String prefix = "pre ü ";
        Method1<Text, String, String> prefixed = (t, s) -> prefix + t.upper(s);
        assertEquals("pre ü AB", roundTrip(prefixed).apply(text, "ab"));
        Config config = new Config(3, "cfg");
        Method1<Text, String, String> configured = (t, s) -> config.name() + t.repeat(s, config.n());
        assertEquals("cfgxxx", roundTrip(configured).apply(text, "x"));
        long big = Long.MAX_VALUE;
        double half = 0.5;
        char c = 'q';
        Method0<Text, String> primitives = t -> big + "/" + half + "/" + c;
        assertEquals(Long.MAX_VALUE + "/0.5/q", roundTrip(primitives).apply(text));
        Object[] parts = {"p", 2, new Object[] {null, 'z'}};
        Method0<Text, String> array = t -> Arrays.deepToString(parts);
        assertEquals("[p, 2, [null, z]]", roundTrip(array).apply(text));
    }

    @Test
    void capturedTensorIsCopiedOutOfTheMessage() throws Exception {
        try (Tensor weights = Tensor.of(new float[] {1.5f, 2.5f, -1f})) {
            Method1<Text, String, String> scaled = (t, s) -> s + (weights.getFloat(0) + weights.getFloat(1)
                    + weights.getFloat(2));
            byte[] bytes = write(scaled);
            Method1<Text, String, String> back = read(bytes);
            Arrays.fill(bytes, (byte) 0);
            assertEquals("sum 3.0", back.apply(new Text(), "sum "));
            Tensor captured = (Tensor) serializedForm(back).getCapturedArg(0);
            assertTrue(captured.ownsMemory(), "a copy owned by the lambda");
            assertTrue(weights.contentEquals(captured));
            assertNotSame(weights, captured);
            captured.close();
        }
    }

    @Test
    void actorFactoryLambdaCreatesTheActor() throws Exception {
        ActorFactory<Foo> factory = () -> new Foo(3, "x");
        assertEquals(new Foo(3, "x"), roundTrip(factory).create());
        int n = 9;
        String s = "captured";
        ActorFactory<Foo> capturing = () -> new Foo(n, s);
        assertEquals(new Foo(9, "captured"), roundTrip(capturing).create());
        ActorFactory<Text> constructor = Text::new;
        assertInstanceOf(Text.class, roundTrip(constructor).create());
    }

    @Test
    void plainClassWithoutStateIsSentByName() throws Exception {
        Method1<Text, String, String> back = roundTrip(new UpperFn());
        assertInstanceOf(UpperFn.class, back);
        assertEquals("AB!", back.apply(new Text(), "ab"));
    }

    @Test
    void plainClassWithStateOrWithoutNoArgConstructorIsRefused() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> write(new PrefixFn("p")));
        assertEquals("cannot send " + PrefixFn.class.getName() + " to another process: it has instance fields [prefix];"
                + " a function sent to another process must be a lambda, a method reference, or an instance of a"
                + " class with a no-arg constructor and no instance fields", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> write(new NoDefaultFn(1)));
        assertTrue(e.getMessage().startsWith("cannot send " + NoDefaultFn.class.getName()
                + " to another process: it has no no-arg constructor;"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> write("a string is Serializable"));
        assertTrue(e.getMessage().contains("it implements neither ActorFactory nor Method0..Method8"), e.getMessage());
    }

    @Test
    void unregisteredCaptureFailsAtWriteNamingTheLambdaAndTheFix() {
        Secret secret = new Secret(4);
        Method1<Text, String, String> leaky = (t, s) -> s + secret.x();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> write(leaky));
        String lambdaName = serializedForm(leaky).getImplMethodName();
        assertTrue(e.getMessage().startsWith("cannot send lambda " + LambdaCodecTest.class.getName() + "." + lambdaName
                + " (a dev.kiln.graph.Method1) to another process: its captured value 0 (" + Secret.class.getName()
                + ") cannot be encoded: "), e.getMessage());
        assertTrue(e.getMessage().contains("with codec.register(Secret.class). Fix: register that class with the codec"
                + " in every process, or capture only primitives, strings, byte[] and tensors"), e.getMessage());
    }

    @Test
    void lambdaThatCapturesThisSaysSo() {
        Method1<Text, String, String> withThis = (t, s) -> s + suffix;
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> write(withThis));
        assertTrue(e.getMessage().contains("its captured value 0 (" + LambdaCodecTest.class.getName() + ")"),
                e.getMessage());
        assertTrue(e.getMessage().contains("captures 'this': copy the field to a local first"), e.getMessage());
    }

    @Test
    void capturingClassMissingInTheReaderIsReported() {
        Method1<Text, String, String> upper = Text::upper;
        byte[] bytes = write(upper);
        ClassLoader bare = new ClassLoader(null) {
        };
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> LambdaCodec.read(new WireIn(bytes), codec, bare));
        assertEquals("cannot rebuild lambda " + Text.class.getName() + ".upper: class "
                + LambdaCodecTest.class.getName() + " is not found in this process; put it on the class path of"
                + " every process of the graph", e.getMessage());
    }

    @Test
    void capturingClassWithoutSuchLambdaIsReported() throws Exception {
        byte[] bytes = write(Caps1.lambda());
        Method1<Text, String, String> back = read(bytes);
        assertEquals("Caps1 a", back.apply(new Text(), "a"));

        IllegalArgumentException none = assertThrows(IllegalArgumentException.class,
                () -> read(rename(bytes, Caps1.class, Caps2.class)));
        assertEquals("cannot rebuild lambda " + Caps1.class.getName() + "." + serializedForm(Caps1.lambda())
                .getImplMethodName() + ": " + Caps2.class.getName() + " has no $deserializeLambda$ (it declares no"
                + " serializable lambda); is this process running the same build of it as the sender?",
                none.getMessage());

        IllegalArgumentException other = assertThrows(IllegalArgumentException.class,
                () -> read(rename(bytes, Caps1.class, Caps3.class)));
        assertTrue(other.getMessage().contains(Caps3.class.getName() + " declares no serializable lambda that"
                + " matches it; is this process running the same build of " + Caps3.class.getName()
                + " as the sender?"), other.getMessage());
    }

    @Test
    void truncatedOrCorruptMessageIsAnIllegalArgument() {
        int times = 4;
        Method1<Text, String, String> repeat = (t, s) -> t.repeat(s, times);
        byte[] bytes = write(repeat);
        for (int length = 0; length < bytes.length; length++) {
            byte[] prefix = Arrays.copyOf(bytes, length);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> read(prefix), "truncated to " + length);
            assertTrue(e.getMessage().startsWith("truncated wire message") || e.getMessage().startsWith("corrupt wire"),
                    e.getMessage());
        }
        for (int i = 0; i < bytes.length; i++) {
            byte[] flipped = bytes.clone();
            flipped[i] ^= 0x41;
            try {
                read(flipped);
            } catch (IllegalArgumentException expected) {
                // what a corrupt message must throw
            }
        }
    }

    /** Replaces the first occurrence of one class name by another of the same length: the capturing class. */
    private static byte[] rename(byte[] bytes, Class<?> from, Class<?> to) {
        byte[] a = from.getName().replace('.', '/').getBytes(StandardCharsets.UTF_8);
        byte[] b = to.getName().replace('.', '/').getBytes(StandardCharsets.UTF_8);
        assertEquals(a.length, b.length);
        byte[] copy = bytes.clone();
        for (int i = 0; i + a.length <= copy.length; i++) {
            if (Arrays.equals(copy, i, i + a.length, a, 0, a.length)) {
                System.arraycopy(b, 0, copy, i, b.length);
                return copy;
            }
        }
        throw new AssertionError("no " + from.getName() + " in the message");
    }

    private static SerializedLambda serializedForm(Serializable function) {
        try {
            Method writeReplace = function.getClass().getDeclaredMethod("writeReplace");
            writeReplace.setAccessible(true);
            return (SerializedLambda) writeReplace.invoke(function);
        } catch (ReflectiveOperationException e) {
            throw new AssertionError(e);
        }
    }

    /** Declares a serializable lambda. */
    static final class Caps1 {
        static Method1<Text, String, String> lambda() {
            return (t, s) -> "Caps1 " + s;
        }
    }

    /** Declares no serializable lambda. */
    static final class Caps2 {
        static String plain() {
            return "no lambda here";
        }
    }

    /** Declares a different serializable lambda. */
    static final class Caps3 {
        static Method2<Text, String, String, String> lambda() {
            return (t, a, b) -> "Caps3 " + a + b;
        }
    }
}
