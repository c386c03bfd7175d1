package dev.kiln.bench;

import dev.kiln.ActorOptions;
import dev.kiln.Kiln;
import dev.kiln.KilnOptions;
import dev.kiln.executor.ControlCodec;
import dev.kiln.executor.ControlLink;
import dev.kiln.executor.Message;
import dev.kiln.graph.ActorRef;
import dev.kiln.transport.Hkdf;
import org.agrona.ExpandableArrayBuffer;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

import javax.crypto.Mac;
import javax.crypto.ShortBufferException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.Arrays;
import java.util.concurrent.TimeUnit;

/**
 * The cost of the authenticated control plane (issue 16), in one run:
 *
 * <ul>
 *   <li>{@link #callRoundTrip} ({@link Mode#SampleTime}, us): {@code kiln.call(actor, Echo::inc, x).get()} to an
 *       actor in a child JVM: the CALL and its REPLY each encoded with SBE, sealed with a sequence number and an
 *       HMAC-SHA256 truncated to 16 bytes, and checked on arrival (two MACs made, two checked);</li>
 *   <li>{@link #encodeCallFrame} (ns): the SBE encoding of that CALL frame alone, without a MAC;</li>
 *   <li>{@link #macCallFrame} (ns): what the MAC adds to one frame: HMAC-SHA256 over the encoded CALL, as the
 *       sender makes it, and the constant-time comparison a receiver does (one of each side's two steps).</li>
 * </ul>
 *
 * A round trip costs four MAC steps (make and check, each way): {@code 2 x macCallFrame} against
 * {@code callRoundTrip} is the share of the round trip that authentication takes.
 */
public class ControlPlaneBenchmark {

    /** The child JVM's actor. Public: the worker JVM creates it. */
    public static final class Echo {
        /**
         * @param x any int
         * @return x + 1
         */
        public int inc(int x) {
            return x + 1;
        }
    }

    /** A runtime with one actor in a child JVM. */
    @State(Scope.Benchmark)
    public static class ChildJvm {
        Path dir;
        Kiln kiln;
        ActorRef<Echo> echo;
        int x;

        /** Starts the runtime and the child. */
        @Setup(Level.Trial)
        public void start() throws Exception {
            dir = Files.createTempDirectory("kiln-bench-control-");
            kiln = Kiln.local(KilnOptions.defaults().runDirectory(dir.resolve("run")));
            echo = kiln.actor(Echo::new, ActorOptions.process("echo"));
            if (kiln.call(echo, Echo::inc, 1).get(60, TimeUnit.SECONDS) != 2) {
                throw new IllegalStateException("the child JVM's actor gave a wrong result");
            }
        }

        /** Closes the runtime (the child exits) and removes its files. */
        @TearDown(Level.Trial)
        public void stop() throws Exception {
            kiln.close();
            UdpEcho.deleteTree(dir);
        }
    }

    /** One CALL frame, its key, and buffers for encoding and sealing it. */
    @State(Scope.Thread)
    public static class Frame {
        final ExpandableArrayBuffer buffer = new ExpandableArrayBuffer(256);
        final byte[] mac = new byte[32];
        final byte[] received = new byte[ControlLink.MAC_BYTES];
        Message.Call call;
        Mac hmac;
        int length;

        /** Builds the frame and the MAC. */
        @Setup(Level.Trial)
        public void build() {
            byte[] key = new byte[32];
            Arrays.fill(key, (byte) 7);
            hmac = Hkdf.hmac(key);
            // The size of a real CALL of Echo::inc: a serialized method reference and one int argument.
            call = new Message.Call(1, 1, 1, 0, new byte[180], new byte[12]);
            length = ControlCodec.encode(call, 1, buffer);
        }
    }

    /**
     * @param c the child JVM
     * @return the actor's answer
     * @throws Exception if the call fails
     */
    @Benchmark
    @BenchmarkMode(Mode.SampleTime)
    @OutputTimeUnit(TimeUnit.MICROSECONDS)
    public int callRoundTrip(ChildJvm c) throws Exception {
        return c.kiln.call(c.echo, Echo::inc, c.x++).get(60, TimeUnit.SECONDS);
    }

    /**
     * @param f the frame
     * @return its length
     */
    @Benchmark
    @BenchmarkMode(Mode.AverageTime)
    @OutputTimeUnit(TimeUnit.NANOSECONDS)
    public int encodeCallFrame(Frame f) {
        return ControlCodec.encode(f.call, 1, f.buffer);
    }

    /**
     * @param f the frame
     * @return whether the MAC matched (it does)
     * @throws ShortBufferException never: the buffer has 32 bytes
     */
    @Benchmark
    @BenchmarkMode(Mode.AverageTime)
    @OutputTimeUnit(TimeUnit.NANOSECONDS)
    public boolean macCallFrame(Frame f) throws ShortBufferException {
        f.hmac.update(f.buffer.byteArray(), 0, f.length);
        f.hmac.doFinal(f.mac, 0);
        System.arraycopy(f.mac, 0, f.received, 0, ControlLink.MAC_BYTES);
        return MessageDigest.isEqual(Arrays.copyOf(f.mac, ControlLink.MAC_BYTES), f.received);
    }
}
