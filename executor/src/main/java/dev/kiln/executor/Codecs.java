package dev.kiln.executor;

import dev.kiln.compiler.CompileOptions;
import dev.kiln.compiler.ExecutionPlan;
import dev.kiln.executor.wire.LambdaCodec;
import dev.kiln.executor.wire.PlanCodec;
import dev.kiln.executor.wire.WireIn;
import dev.kiln.executor.wire.WireOut;
import dev.kiln.transport.ValueCodec;

import java.io.Serializable;

/**
 * The opaque bodies that control messages carry as bytes ({@link ControlCodec} frames them): values (through
 * the {@link ValueCodec}), lambdas (actor factories and method references) and plans ({@code PlanCodec}). Never
 * Java deserialization. Thread-safe.
 */
public final class Codecs {

    private Codecs() {
    }

    /**
     * @param value a value the codec can encode
     * @param codec the runtime's codec
     * @return its encoding
     * @throws IllegalArgumentException if the codec cannot encode it (an unregistered class)
     */
    public static byte[] valueBytes(Object value, ValueCodec codec) {
        WireOut out = new WireOut();
        out.writeValue(codec, value);
        return out.toByteArray();
    }

    /**
     * @param bytes an encoding from {@link #valueBytes}
     * @param codec the runtime's codec
     * @return the value, owning its memory (tensors are copied out of {@code bytes})
     */
    public static Object value(byte[] bytes, ValueCodec codec) {
        WireIn in = new WireIn(bytes);
        Object value = in.readValue(codec);
        in.expectEnd();
        return value;
    }

    /**
     * @param value a value read in place from a channel
     * @return the value, owning its memory (see {@link WireIn#own})
     */
    public static Object owned(Object value) {
        return WireIn.own(value);
    }

    /**
     * @param function an actor factory or a {@code Method0..Method8}
     * @param codec    encodes its captured values
     * @return its encoding
     * @throws IllegalArgumentException if it captures a value the codec cannot encode
     */
    public static byte[] lambdaBytes(Serializable function, ValueCodec codec) {
        WireOut out = new WireOut();
        LambdaCodec.write(out, function, codec);
        return out.toByteArray();
    }

    /**
     * @param bytes  an encoding from {@link #lambdaBytes}
     * @param codec  decodes its captured values
     * @param loader loads its classes
     * @return the function
     */
    public static Serializable lambda(byte[] bytes, ValueCodec codec, ClassLoader loader) {
        WireIn in = new WireIn(bytes);
        Serializable function = LambdaCodec.read(in, codec, loader);
        in.expectEnd();
        return function;
    }

    /**
     * @param plan  a plan
     * @param codec encodes its constants
     * @return its encoding
     */
    public static byte[] planBytes(ExecutionPlan plan, ValueCodec codec) {
        return PlanCodec.encode(plan, codec);
    }

    /**
     * @param bytes  an encoding from {@link #planBytes}
     * @param codec  decodes its constants
     * @param loader loads its classes
     * @return the plan
     */
    public static ExecutionPlan plan(byte[] bytes, ValueCodec codec, ClassLoader loader) {
        return PlanCodec.decode(bytes, codec, loader);
    }

    /**
     * @param options compile options
     * @return their encoding
     */
    public static byte[] optionsBytes(CompileOptions options) {
        return PlanCodec.encode(options);
    }

    /**
     * @param bytes an encoding from {@link #optionsBytes}
     * @return the options
     */
    public static CompileOptions options(byte[] bytes) {
        return PlanCodec.decodeOptions(bytes);
    }
}
