package dev.kiln.transport;

import java.nio.BufferUnderflowException;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Objects;
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
 * @param gpuFreeBytes per GPU (index in this list = device ordinal), its free device memory in bytes (>= 0); empty
 *                     for a worker without GPUs; at most {@value #MAX_GPUS}
 */
public record WorkerInfo(String hostName, Map<String, String> labels, int cores, List<Long> gpuFreeBytes) {

    /** Longest host name, label key or label value, in UTF-8 bytes. */
    public static final int MAX_STRING_BYTES = 255;
    /** Most labels a worker may advertise. */
    public static final int MAX_LABELS = 64;
    /** Most GPUs a worker may advertise. */
    public static final int MAX_GPUS = 64;

    /** "KWI1" as a big-endian int: the encoding's magic and version. */
    private static final int MAGIC = 0x4B574931;

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
        gpuFreeBytes = List.copyOf(gpuFreeBytes);
        if (gpuFreeBytes.size() > MAX_GPUS) {
            throw new IllegalArgumentException("at most " + MAX_GPUS + " GPUs, got " + gpuFreeBytes.size());
        }
        for (long free : gpuFreeBytes) {
            if (free < 0) {
                throw new IllegalArgumentException("free device memory must be >= 0 bytes, got " + free);
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

    /** @return the number of GPUs */
    public int gpus() {
        return gpuFreeBytes.size();
    }

    /**
     * The stable encoding: magic {@code KWI1}, host name, label count, (key, value) pairs in key
     * order, cores, GPU count, free bytes per GPU; strings as an unsigned byte length and UTF-8,
     * numbers as big-endian ints and longs. Equal infos give equal bytes on every JVM.
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
        int size = 4 + 1 + 4 + 4 + 8 * gpuFreeBytes.size();
        for (byte[] s : strings) {
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
        out.putInt(gpuFreeBytes.size());
        for (long free : gpuFreeBytes) {
            out.putLong(free);
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
            List<Long> free = new ArrayList<>(gpus);
            for (int i = 0; i < gpus; i++) {
                free.add(in.getLong());
            }
            if (in.hasRemaining()) {
                throw new IllegalArgumentException(in.remaining() + " bytes after the encoded WorkerInfo");
            }
            WorkerInfo info = new WorkerInfo(hostName, labels, cores, free);
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
