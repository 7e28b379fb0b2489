// Java Flume 1.11.0's own syslog classes on a corpus, for tests/syslog_java.rs: each stdin
// line is a command, answered by its events (one per line) and a line "END".
//
//   utils <eventSize> <keepFields, '_' for spaces> <tcp|udp> <clockMillis> <hex bytes>
//       SyslogUtils(eventSize, chooseFieldsToKeep(keep), isUdp, fixed clock): TCP calls
//       extractEvent until it returns null (the stream in one buffer), UDP once.
//   parser <keepFields> <charset> <clockMillis> <hex line>
//       MultiportSyslogTCPSource's parseEvent: IoBuffer.getString with the charset's
//       decoder (REPORT), then SyslogParser.parseMessage, IllegalArgumentException making
//       an Invalid event of the decoded line.
//   utf8 <hex>
//       new String(bytes) then getBytes() (the platform charset, UTF-8).
//
// An event prints as "E <hex body> <name>=<hex value>,..." with headers sorted by name;
// an exception that escapes as "X <class name>".

import java.nio.charset.Charset;
import java.nio.charset.CharsetDecoder;
import java.time.Clock;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import org.apache.flume.Event;
import org.apache.flume.event.EventBuilder;
import org.apache.flume.source.SyslogParser;
import org.apache.flume.source.SyslogUtils;
import org.apache.mina.core.buffer.IoBuffer;

public class SyslogHarness {
  static PrintStream out;

  static byte[] unhex(String s) {
    if (s.equals("-")) {
      return new byte[0];
    }
    byte[] b = new byte[s.length() / 2];
    for (int i = 0; i < b.length; i++) {
      b[i] = (byte) Integer.parseInt(s.substring(2 * i, 2 * i + 2), 16);
    }
    return b;
  }

  static String hex(byte[] b) {
    StringBuilder sb = new StringBuilder();
    for (byte x : b) {
      sb.append(String.format("%02x", x & 0xff));
    }
    return sb.length() == 0 ? "-" : sb.toString();
  }

  static void print(Event e) throws Exception {
    StringBuilder sb = new StringBuilder("E ").append(hex(e.getBody())).append(' ');
    boolean first = true;
    for (Map.Entry<String, String> h : new TreeMap<>(e.getHeaders()).entrySet()) {
      if (!first) {
        sb.append(',');
      }
      first = false;
      sb.append(h.getKey()).append('=').append(hex(h.getValue().getBytes("UTF-8")));
    }
    out.println(sb);
  }

  // Flume's SyslogUtils keeps `priority` and `version` from the message before when the
  // next one does not set them; flume-fast does not (docs/differences.md). Cleared before
  // each event so the rest can be compared.
  static void forgetLastMessage(SyslogUtils u) throws Exception {
    for (String f : new String[] {"priority", "version"}) {
      java.lang.reflect.Field field = SyslogUtils.class.getDeclaredField(f);
      field.setAccessible(true);
      field.set(u, null);
    }
  }

  public static void main(String[] args) throws Exception {
    out = new PrintStream(System.out, false, "UTF-8");
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, "UTF-8"));
    SyslogParser parser = new SyslogParser();
    String line;
    while ((line = in.readLine()) != null) {
      String[] a = line.split(" ");
      try {
        if (a[0].equals("utils")) {
          int size = Integer.parseInt(a[1]);
          Set<String> keep = SyslogUtils.chooseFieldsToKeep(a[2].replace('_', ' '));
          boolean udp = a[3].equals("udp");
          Clock clock = Clock.fixed(Instant.ofEpochMilli(Long.parseLong(a[4])), ZoneOffset.UTC);
          SyslogUtils u = new SyslogUtils(size, keep, udp, clock);
          ByteBuf buf = Unpooled.wrappedBuffer(unhex(a[5]));
          do {
            forgetLastMessage(u);
            Event e;
            try {
              e = u.extractEvent(buf);
            } catch (RuntimeException ex) {
              out.println("X " + ex.getClass().getName());
              break;
            }
            if (e == null) {
              break;
            }
            print(e);
          } while (!udp && buf.isReadable());
        } else if (a[0].equals("parser")) {
          Set<String> keep = SyslogUtils.chooseFieldsToKeep(a[1].replace('_', ' '));
          CharsetDecoder decoder = Charset.forName(a[2]).newDecoder();
          org.joda.time.DateTimeUtils.setCurrentMillisFixed(Long.parseLong(a[3]));
          byte[] bytes = unhex(a[4]);
          String msg;
          try {
            msg = IoBuffer.wrap(bytes).getString(decoder);
          } catch (Exception ex) {
            Event e = EventBuilder.withBody(bytes);
            e.getHeaders().put("flume.syslog.status", "Invalid");
            print(e);
            out.println("END");
            continue;
          }
          Event e;
          try {
            e = parser.parseMessage(msg, decoder.charset(), keep);
          } catch (IllegalArgumentException ex) {
            e = EventBuilder.withBody(msg, decoder.charset());
            e.getHeaders().put("flume.syslog.status", "Invalid");
          } catch (RuntimeException ex) {
            out.println("X " + ex.getClass().getName());
            out.println("END");
            continue;
          }
          print(e);
        } else if (a[0].equals("utf8")) {
          byte[] b = unhex(a[1]);
          out.println("E " + hex(new String(b).getBytes()) + " ");
        }
      } catch (Exception ex) {
        out.println("X " + ex);
      }
      out.println("END");
    }
    out.flush();
  }
}
