package dev.kiln.transport;

import java.nio.BufferUnderflowException;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeMap;

/**
 * What a worker advertises when it joins a driver: where it runs and what it offers, so that the
 * driver can place actors on it. Immutable, hence thread-safe. {@link #encode()} gives stable bytes
 * (labels in key order, big-endian), which {@link JoinHandshake} authenticates.
 *
 * @param hostName     the worker's host name, 1 to {@value #MAX_STRING_BYTES} bytes of UTF-8
 * @param labels       placement labels, e.g. {@code zone=a}; keys 1 to {@value #MAX_STRING_BYTES} bytes, values up
 *                     to that; at most {@value #MAX_LABELS}; copied into an unmodifiable map sorted by key
 * @param cores        CPU cores the worker offers, >= 1
 * @param gpus         the worker's GPUs (index in this list = device ordinal in the worker's JVM): identity, memory and
 *                     peer access; empty for a worker without GPUs; at most {@value #MAX_GPUS}, each UUID once (a JVM
 *                     sees a device at one ordinal). Read without creating a CUDA context; free memory is read on
 *                     each actor's device when the actor starts
 */
public record WorkerInfo(String hostName, Map<String, String> labels, int cores, List<Gpu> gpus) {

    /** Longest host name, label key or label value, in UTF-8 bytes. */
    public static final int MAX_STRING_BYTES = 255;
    /** Most labels a worker may advertise. */
    public static final int MAX_LABELS = 64;
    /** Most GPUs a worker may advertise. */
    public static final int MAX_GPUS = 64;

    /** "KWI2" as a big-endian int: the encoding's magic and version. */
    private static final int MAGIC = 0x4B574932;

    /**
     * One GPU of a worker.
     *
     * @param uuid       the device's UUID ({@code GPU-...}), 1 to {@value #MAX_STRING_BYTES} bytes: the same GPU has the
     *                   same UUID in every JVM of its host, whatever its index there
     * @param totalBytes its memory, in bytes, >= 0
     * @param peers      bit {@code j} set when this device has peer access to device {@code j} of the same worker
     */
    public record Gpu(String uuid, long totalBytes, long peers) {
        /**
         * Checks the values.
         *
         * @throws IllegalArgumentException on a blank or too long UUID or negative memory
         */
        public Gpu {
            checkString(uuid, "GPU uuid", false);
            if (totalBytes < 0) {
                throw new IllegalArgumentException("GPU memory must be >= 0 bytes, got " + totalBytes);
            }
        }
    }

    /**
     * Checks and copies the values.
     *
     * @throws IllegalArgumentException naming the value out of range
     * @throws NullPointerException     if a component, label key or value, or GPU figure is null
     */
    public WorkerInfo {
        checkString(hostName, "hostName", false);
        if (labels.size() > MAX_LABELS) {
            throw new IllegalArgumentException("at most " + MAX_LABELS + " labels, got " + labels.size());
        }
        TreeMap<String, String> sorted = new TreeMap<>();
        for (Map.Entry<String, String> e : labels.entrySet()) {
            checkString(e.getKey(), "label key", false);
            checkString(e.getValue(), "label " + e.getKey(), true);
            sorted.put(e.getKey(), e.getValue());
        }
        labels = Collections.unmodifiableSortedMap(sorted);
        if (cores < 1) {
            throw new IllegalArgumentException("cores must be >= 1, got " + cores);
        }
        gpus = List.copyOf(gpus);
        if (gpus.size() > MAX_GPUS) {
            throw new IllegalArgumentException("at most " + MAX_GPUS + " GPUs, got " + gpus.size());
        }
        // The driver takes a UUID for one device: two ordinals with one UUID would join a device to itself.
        Set<String> uuids = new HashSet<>();
        for (int d = 0; d < gpus.size(); d++) {
            if (!uuids.add(gpus.get(d).uuid())) {
                throw new IllegalArgumentException("GPU " + d + " has the UUID " + gpus.get(d).uuid() + " of an earlier"
                        + " GPU: a worker lists each device once");
            }
        }
    }

    private static void checkString(String s, String name, boolean mayBeEmpty) {
        Objects.requireNonNull(s, name);
        int bytes = s.getBytes(StandardCharsets.UTF_8).length;
        if ((!mayBeEmpty && bytes == 0) || bytes > MAX_STRING_BYTES) {
            throw new IllegalArgumentException(name + " must have " + (mayBeEmpty ? 0 : 1) + " to " + MAX_STRING_BYTES
                    + " bytes of UTF-8, has " + bytes);
        }
    }

    /**
     * @param device a device ordinal of this worker
     * @param peer   another
     * @return whether {@code device} has peer access to {@code peer}
     */
    public boolean peerAccess(int device, int peer) {
        return device != peer && device < gpus.size() && peer < gpus.size() && (gpus.get(device).peers() & (1L << peer)) != 0;
    }

    /**
     * The stable encoding: magic {@code KWI2}, host name, label count, (key, value) pairs in key
     * order, cores, GPU count, and per GPU its UUID, memory and peer bits; strings as an unsigned byte
     * length and UTF-8, numbers as big-endian ints and longs. Equal infos give equal bytes on every JVM.
     *
     * @return the bytes, new on each call
     */
    public byte[] encode() {
        List<byte[]> strings = new ArrayList<>();
        strings.add(utf8(hostName));
        for (Map.Entry<String, String> e : labels.entrySet()) {
            strings.add(utf8(e.getKey()));
            strings.add(utf8(e.getValue()));
        }
        List<byte[]> uuids = new ArrayList<>();
        for (Gpu g : gpus) {
            uuids.add(utf8(g.uuid()));
        }
        int size = 4 + 1 + 4 + 4 + 16 * gpus.size();
        for (byte[] s : strings) {
            size += 1 + s.length;
        }
        for (byte[] s : uuids) {
            size += 1 + s.length;
        }
        ByteBuffer out = ByteBuffer.allocate(size);
        out.putInt(MAGIC);
        putString(out, strings.getFirst());
        out.put((byte) labels.size());
        for (int i = 1; i < strings.size(); i++) {
            putString(out, strings.get(i));
        }
        out.putInt(cores);
        out.putInt(gpus.size());
        for (int i = 0; i < gpus.size(); i++) {
            putString(out, uuids.get(i));
            out.putLong(gpus.get(i).totalBytes());
            out.putLong(gpus.get(i).peers());
        }
        return out.array();
    }

    /**
     * Reads what {@link #encode()} wrote, as received from the network: every length and value is
     * checked.
     *
     * @param bytes exactly one encoded info
     * @return the info
     * @throws IllegalArgumentException if the bytes are not exactly one valid encoded info
     */
    public static WorkerInfo decode(byte[] bytes) {
        ByteBuffer in = ByteBuffer.wrap(bytes);
        try {
            if (in.getInt() != MAGIC) {
                throw new IllegalArgumentException("not an encoded WorkerInfo (bad magic)");
            }
            String hostName = getString(in);
            int labelCount = Byte.toUnsignedInt(in.get());
            TreeMap<String, String> labels = new TreeMap<>();
            for (int i = 0; i < labelCount; i++) {
                String key = getString(in);
                if (labels.put(key, getString(in)) != null) {
                    throw new IllegalArgumentException("label " + key + " appears twice");
                }
            }
            int cores = in.getInt();
            int gpus = in.getInt();
            if (gpus < 0 || gpus > MAX_GPUS) {
                throw new IllegalArgumentException("GPU count " + gpus + " out of range");
            }
            List<Gpu> devices = new ArrayList<>(gpus);
            for (int i = 0; i < gpus; i++) {
                devices.add(new Gpu(getString(in), in.getLong(), in.getLong()));
            }
            if (in.hasRemaining()) {
                throw new IllegalArgumentException(in.remaining() + " bytes after the encoded WorkerInfo");
            }
            WorkerInfo info = new WorkerInfo(hostName, labels, cores, devices);
            if (!Arrays.equals(info.encode(), bytes)) {
                throw new IllegalArgumentException("not the stable encoding of a WorkerInfo: labels out of key order");
            }
            return info;
        } catch (BufferUnderflowException e) {
            throw new IllegalArgumentException("truncated WorkerInfo: " + bytes.length + " bytes", e);
        }
    }

    private static byte[] utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    private static void putString(ByteBuffer out, byte[] s) {
        out.put((byte) s.length);
        out.put(s);
    }

    private static String getString(ByteBuffer in) {
        int length = Byte.toUnsignedInt(in.get());
        if (length > in.remaining()) {
            throw new BufferUnderflowException();
        }
        ByteBuffer slice = in.slice(in.position(), length);
        in.position(in.position() + length);
        try {
            return StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(slice).toString();
        } catch (CharacterCodingException e) {
            throw new IllegalArgumentException("a string of the WorkerInfo is not UTF-8", e);
        }
    }
}
